"""Model fields every app uses for secrets. No app writes crypto code itself.

`EncryptedTextField` holds a secret that is encrypted at rest. Assign plaintext, save, read
plaintext back; the column only ever holds ciphertext.

    class SSHKey(OrgOwnedModel):
        private_key = EncryptedTextField()

How it behaves (details and the stored format: docs/secrets.md):

- Reading `obj.private_key` decrypts on first access and caches the plaintext on the instance
  (as a `SecretText`, a `str` whose repr is masked). Loading rows never decrypts by itself.
- Assigning a string marks it for encryption; `save()` encrypts it under the row's organization
  data key (platform data key for models without an `organization`), bound to the model, field,
  primary key and organization, so a value copied to another row or organization fails to
  decrypt with `apps.core.crypto.DecryptionError` instead of returning garbage.
- "" and None stay as they are (no ciphertext).
- `values()` / `values_list()` return the stored envelope (`Ciphertext`), never plaintext.
- `QuerySet.update()` / `bulk_update()` with plaintext are refused: there is no row to bind it
  to. Assign on the instance and `save()`.
- Saving an instance whose secret was not assigned leaves the column alone (`SET col = col`), so
  a stale instance never writes back an envelope that a rotation has replaced.
- Forms never render the stored value (an empty input keeps it unchanged), and dumpdata writes "".
- The primary key must exist before the first save (UUID pks default at construction).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core import checks
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models.query_utils import DeferredAttribute

_UNSET: Any = object()


class Ciphertext(str):
    """A stored envelope as read from the database. Not secret; tells the field "already
    encrypted" apart from plaintext a caller assigns."""

    __slots__ = ()


class SecretText(str):
    """Decrypted plaintext. A normal `str` everywhere, except that its repr is masked so that
    tracebacks with locals, debug pages and `%r` logging do not print it."""

    # Where this plaintext was read from: (envelope, binding, field label); set by the field.
    _origin: tuple[str, tuple, str]

    def __repr__(self) -> str:
        return "SecretText('********')"


class _Slot:
    """Per-instance state of one encrypted field."""

    __slots__ = ("stored", "plain", "dirty", "bound")

    def __init__(self, stored: str | None, plain: Any, dirty: bool, bound: tuple | None) -> None:
        self.stored = stored  # the envelope as in the database (or "" / None)
        self.plain = plain  # decrypted or assigned plaintext, or _UNSET
        self.dirty = dirty  # plaintext assigned since the last save
        self.bound = bound  # (pk, organization id) `stored` is bound to; None if unknown

    def __getstate__(self) -> tuple:
        # A pickled instance (cache, task payload) carries ciphertext, never decrypted plaintext.
        plain = self.plain if self.dirty else _UNSET
        return (
            self.stored,
            None if plain is _UNSET else plain,
            plain is _UNSET,
            self.dirty,
            self.bound,
        )

    def __setstate__(self, state: tuple) -> None:
        self.stored, plain, unset, self.dirty, self.bound = state
        self.plain = _UNSET if unset else plain

    def __repr__(self) -> str:
        return f"<encrypted field state dirty={self.dirty}>"


class _EncryptedAttribute(DeferredAttribute):
    """Decrypts lazily on read, remembers assignments for encryption on save."""

    field: EncryptedTextField

    def __get__(self, instance, cls=None):
        if instance is None:
            return self
        slot = super().__get__(instance, cls)  # loads a deferred column if needed
        if slot.plain is _UNSET:
            slot.plain = self.field.decrypt_slot(instance, slot)
        return slot.plain

    def __set__(self, instance, value) -> None:
        data = instance.__dict__
        field = self.field
        if isinstance(value, Ciphertext):
            data[field.attname] = _Slot(str(value), _UNSET, False, field.binding(instance))
            return
        if value is None or value == "":
            data[field.attname] = _Slot(value, value, True, None)
            return
        if not isinstance(value, str):
            raise TypeError(f"{field.label()} takes text, not {type(value).__name__}.")
        origin = getattr(value, "_origin", None)
        if isinstance(value, SecretText) and origin is not None and origin[2] == field.label():
            # Read from this field of another instance of the same row (refresh_from_db) or of
            # another row: keep its envelope; pre_save re-encrypts if the binding differs.
            data[field.attname] = _Slot(origin[0], value, False, origin[1])
            return
        plain = SecretText(value)
        data[field.attname] = _Slot(None, plain, True, None)


class EncryptedTextField(models.TextField):
    """A secret string, encrypted at rest (see module docstring)."""

    description = "Encrypted text"
    descriptor_class = _EncryptedAttribute

    # --- Context --------------------------------------------------------------------------

    def label(self) -> str:
        return f"{self.model._meta.label_lower}.{self.name}"

    def binding(self, instance, *, load: bool = False) -> tuple | None:
        """(pk, organization id) of the instance. Unless `load`, None while either is deferred
        (a deferred column is never loaded just to remember where a value came from)."""
        if load:
            return self._row_binding(instance)
        data = instance.__dict__
        pk_attname = instance._meta.pk.attname
        if pk_attname not in data:
            return None
        org = data.get("organization_id") if self._has_org() else None
        if self._has_org() and "organization_id" not in data:
            return None
        return (data[pk_attname], org)

    def _row_binding(self, instance) -> tuple:
        """(pk, organization id) of the instance, loading a deferred column if need be."""
        return (instance.pk, instance.organization_id if self._has_org() else None)

    def _has_org(self) -> bool:
        cached = self.__dict__.get("_has_org_cache")
        if cached is None:
            try:
                field = self.model._meta.get_field("organization")
            except FieldDoesNotExist:  # a platform-level model: the platform data key
                field = None
            cached = self.__dict__["_has_org_cache"] = (
                isinstance(field, models.Field) and field.attname == "organization_id"
            )
        return cached

    def _context(self, binding: tuple):
        from apps.core.crypto.values import SecretContext

        pk, org = binding
        if pk is None:
            raise ValueError(
                f"{self.label()}: the row has no primary key yet; an encrypted field needs one "
                "before saving (use a UUID primary key with a default)."
            )
        return SecretContext(
            model=self.model._meta.label_lower, field=self.name, pk=str(pk), organization_id=org
        )

    # --- Reading and writing --------------------------------------------------------------

    def decrypt_slot(self, instance, slot: _Slot) -> Any:
        from apps.core.crypto.values import decrypt_value

        if slot.stored in (None, ""):
            return slot.stored
        binding = slot.bound or self._row_binding(instance)
        plain = SecretText(decrypt_value(slot.stored, context=self._context(binding)))
        plain._origin = (slot.stored, binding, self.label())
        return plain

    def is_blank(self, instance) -> bool:
        """Whether the field holds no secret, told from the stored envelope: nothing is
        decrypted (a page deciding whether to offer a download need not read the secret)."""
        if self.attname not in instance.__dict__:
            instance.refresh_from_db(fields=[self.attname])
        slot: _Slot = instance.__dict__[self.attname]
        if slot.plain is not _UNSET:
            return not slot.plain
        return not slot.stored

    def pre_save(self, model_instance, add: bool) -> Any:
        from apps.core.crypto.values import encrypt_value

        if self.attname not in model_instance.__dict__:
            getattr(model_instance, self.attname)
        slot: _Slot = model_instance.__dict__[self.attname]
        binding = self._row_binding(model_instance)
        moved = slot.bound is not None and slot.bound != binding
        changed = slot.dirty or (moved and bool(slot.stored))
        if not changed and not add:
            # Unchanged: the UPDATE sets the column to itself, never to the envelope loaded
            # earlier, which a rotation may have replaced (and `prune` deleted its key) since.
            return models.F(self.name)
        if changed:
            plain = slot.plain
            if plain is _UNSET:
                plain = self.decrypt_slot(model_instance, slot)
            if plain in (None, ""):
                slot.stored = plain
            else:
                slot.stored = encrypt_value(str(plain), context=self._context(binding))
                plain = SecretText(plain)
                plain._origin = (slot.stored, binding, self.label())
                slot.plain = plain
            slot.bound = binding
            slot.dirty = False
        return slot.stored

    def from_db_value(self, value, expression, connection):
        return Ciphertext(value) if value else value

    def get_db_prep_save(self, value, connection):
        from apps.core.crypto.envelope import looks_like_envelope

        if getattr(value, "target", None) is self and hasattr(value, "as_sql"):
            return value  # the column itself: an unchanged secret (see pre_save)
        if value not in (None, "") and not (isinstance(value, str) and looks_like_envelope(value)):
            raise ValueError(
                f"{self.label()} can only be written by saving a model instance (assign the "
                "plaintext, then save()); QuerySet.update() and bulk_update() cannot encrypt it."
            )
        return super().get_db_prep_save(value, connection)

    # --- Forms and serialization never carry the secret -------------------------------------

    def value_from_object(self, obj) -> Any:
        return ""

    def save_form_data(self, instance, data) -> None:
        # Write-only in forms: an empty input means "unchanged".
        if data not in (None, ""):
            setattr(instance, self.name, data)

    def formfield(self, **kwargs):
        return super().formfield(
            **{
                "required": False,
                "help_text": "Write-only. Leave empty to keep the current value.",
                "widget": forms.Textarea(attrs={"autocomplete": "off"}),
                **kwargs,
            }
        )

    # --- System checks ----------------------------------------------------------------------

    def check(self, **kwargs):
        errors = super().check(**kwargs)
        pk = self.model._meta.pk
        if isinstance(pk, models.AutoField | models.BigAutoField | models.SmallAutoField):
            errors.append(
                checks.Error(
                    "EncryptedTextField needs a primary key known before the row is saved "
                    "(the ciphertext is bound to it); this model's pk comes from the database.",
                    hint="Inherit TimeStampedModel (UUID primary key).",
                    obj=self,
                    id="core.E101",
                )
            )
        return errors


@checks.register(checks.Tags.admin)
def check_admin_never_shows_secrets(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """An admin list column, read-only field or search field on an EncryptedTextField would
    print (or search) plaintext; forms are safe (the field never renders its value)."""
    from django.contrib import admin

    errors: list[checks.CheckMessage] = []
    for model, model_admin in admin.site._registry.items():
        secret_names = {
            f.name for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)
        }
        if not secret_names:
            continue
        for option in ("list_display", "readonly_fields", "search_fields", "list_filter"):
            values = getattr(model_admin, option, ()) or ()
            for value in values:
                name = value if isinstance(value, str) else None
                if name and name.lstrip("^=@") in secret_names:
                    errors.append(
                        checks.Error(
                            f"{type(model_admin).__name__}.{option} names the encrypted field "
                            f"{name.lstrip('^=@')!r}, which would show or search plaintext.",
                            obj=type(model_admin),
                            id="core.E102",
                        )
                    )
    return errors

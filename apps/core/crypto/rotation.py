"""Key rotation, online: readers keep decrypting while rows are re-wrapped or re-encrypted.

- `master_key_rotate`: re-wrap every data key that is not wrapped by the active master key.
  O(data keys), never touches a secret. Each batch is one read and one compare-and-set UPDATE,
  so a crash loses nothing and a re-run continues where the last one stopped.
- `data_key_rotate` + `secrets_reencrypt`: give an organization (or the platform) a new data key
  version, then re-encrypt its secrets in batches with compare-and-set UPDATEs (a concurrent
  writer always wins; its value is picked up by the next pass if it used the old version).
  `org_data_key_rotate` does both, and resumes an unfinished rotation instead of adding a version.
- `data_keys_prune`: delete old data key versions that no secret references any more, once every
  process has stopped using them (they cache the active version for the cache lifetime).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
from django.utils import timezone

from apps.core.crypto.envelope import envelope_prefix
from apps.core.crypto.errors import CryptoError
from apps.core.crypto.keys import (
    DataKeyMaterial,
    data_key_create,
    master_keys,
    material_from_row,
    scope_label,
    unwrap_data_key,
    wrap_data_key,
)
from apps.core.crypto.values import SecretContext, reencrypt_value

logger = logging.getLogger(__name__)

# Called after every batch with (stage, done, total).
Progress = Callable[[str, int, int], None]


@dataclass
class RotationResult:
    """What a rotation did. `failures` names rows by id with a reason (never key material)."""

    total: int = 0
    done: int = 0
    failures: list[str] = field(default_factory=list)
    # Data key rotation: the version secrets were moved onto, and whether this run resumed an
    # unfinished rotation instead of adding that version.
    version: int | None = None
    resumed: bool = False

    @property
    def ok(self) -> bool:
        return not self.failures


def _batch_size(batch_size: int | None) -> int:
    return max(1, batch_size or settings.AUTOGLUE_ROTATION_BATCH_SIZE)


def _noop(stage: str, done: int, total: int) -> None:
    return None


def encrypted_fields() -> list[tuple[type[models.Model], models.Field]]:
    """Every EncryptedTextField of every installed concrete model (walks the app registry)."""
    from apps.core.fields import EncryptedTextField

    found: list[tuple[type[models.Model], models.Field]] = []
    for model in apps.get_models():
        if model._meta.proxy:
            continue
        for model_field in model._meta.concrete_fields:
            if isinstance(model_field, EncryptedTextField) and model_field.model is model:
                found.append((model, model_field))
    return found


def _cas_update(
    *,
    table: str,
    pk_column: str,
    pk_type: str,
    column: str,
    rows: Sequence[tuple],
    extra: str = "",
    extra_params: Sequence = (),
) -> int:
    """UPDATE table SET column = new WHERE pk = id AND column = old, for many rows in one
    statement. Rows changed by someone else in between are left alone. Returns rows updated."""
    if not rows:
        return 0
    qn = connection.ops.quote_name
    values = ", ".join([f"(%s::{pk_type}, %s, %s)"] * len(rows))
    sql = (
        f"UPDATE {qn(table)} AS t SET {qn(column)} = v.new{extra} "  # noqa: S608 - identifiers
        f"FROM (VALUES {values}) AS v(pk, old, new) "
        f"WHERE t.{qn(pk_column)} = v.pk AND t.{qn(column)} = v.old"
    )
    params = [*extra_params, *(item for row in rows for item in row)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


# --- Master key ---------------------------------------------------------------------------------


def master_key_rotate(
    *, batch_size: int | None = None, progress: Progress | None = None
) -> RotationResult:
    """Re-wrap every data key not yet wrapped by the active master key with the active one.

    Resumable: the rows still to do are exactly those naming another master key. A row that
    cannot be unwrapped (its master key is not configured) is reported and skipped.
    """
    from apps.core.models import DataKey

    progress = progress or _noop
    ring = master_keys()
    active = ring.active_id
    size = _batch_size(batch_size)
    pending = DataKey.objects.exclude(master_key_id=active).order_by("id")
    result = RotationResult(total=pending.count())
    progress("master-key", 0, result.total)
    last_id = None
    while True:
        batch_qs = pending if last_id is None else pending.filter(id__gt=last_id)
        batch = list(
            batch_qs.values_list(
                "id", "organization_id", "version", "master_key_id", "wrapped_key"
            )[:size]
        )
        if not batch:
            break
        last_id = batch[-1][0]
        updates = []
        for key_id, org_id, version, master_key_id, wrapped in batch:
            try:
                key = unwrap_data_key(
                    data_key_id=key_id,
                    organization_id=org_id,
                    version=version,
                    master_key_id=master_key_id,
                    wrapped_key=wrapped,
                    ring=ring,
                )
            except CryptoError as exc:
                result.failures.append(str(exc))
                continue
            rewrapped = wrap_data_key(
                key=key,
                data_key_id=key_id,
                organization_id=org_id,
                version=version,
                master_key_id=active,
                ring=ring,
            )
            updates.append((key_id, wrapped, rewrapped))
        result.done += _cas_update(
            table=DataKey._meta.db_table,
            pk_column="id",
            pk_type="uuid",
            column="wrapped_key",
            rows=updates,
            extra=", master_key_id = %s, updated_at = now()",
            extra_params=[active],
        )
        progress("master-key", result.done, result.total)
    logger.info(
        "master key rotation finished",
        extra={
            "active_master_key": active,
            "rewrapped": result.done,
            "total": result.total,
            "failures": len(result.failures),
        },
    )
    return result


# --- Data keys ----------------------------------------------------------------------------------


def _scope_rows(organization_id: uuid.UUID | None):
    from apps.core.models import DataKey

    # `organization=` accepts None (the platform's keys) for the type checker too; same SQL.
    return DataKey.objects.filter(organization=organization_id).order_by("version")


def data_key_rotate(*, organization_id: uuid.UUID | None) -> DataKeyMaterial:
    """Create the next data key version of an organization (None: the platform). New secrets use
    it at once in this process, and in every other process within the key cache lifetime."""
    for _attempt in range(5):
        newest = _scope_rows(organization_id).last()
        try:
            return data_key_create(
                organization_id=organization_id, version=(newest.version + 1) if newest else 1
            )
        except IntegrityError:
            continue  # a concurrent rotation took that version number; take the next
    raise CryptoError(f"Could not add a data key version for {scope_label(organization_id)}.")


def _active_material(organization_id: uuid.UUID | None) -> DataKeyMaterial | None:
    newest = _scope_rows(organization_id).last()
    return material_from_row(newest) if newest else None


def _scoped(model, model_field, organization_id) -> models.QuerySet | None:
    """The model's rows that belong to the scope, or None if it has none there."""
    # Rotation is a platform operation and crosses tenants on purpose: every row of the scope.
    qs = model._base_manager.all()
    if model_field._has_org():
        return qs.filter(organization_id=organization_id)
    return None if organization_id is not None else qs


def _references(organization_id, key_ids: Sequence[uuid.UUID]):
    """(model, field, queryset of rows whose value is under one of `key_ids`) per field."""
    for model, model_field in encrypted_fields():
        qs = _scoped(model, model_field, organization_id)
        if qs is None or not key_ids:
            continue
        condition = models.Q()
        for key_id in key_ids:
            condition |= models.Q(**{f"{model_field.attname}__startswith": envelope_prefix(key_id)})
        yield model, model_field, qs.filter(condition)


def secrets_reencrypt(
    *,
    organization_id: uuid.UUID | None,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> RotationResult:
    """Re-encrypt every secret of the scope that is not under its newest data key version.

    Batches are ordered by primary key with a cursor; each is one read and one compare-and-set
    UPDATE per table. Resumable: a re-run finds exactly the values still under old versions.
    """
    progress = progress or _noop
    size = _batch_size(batch_size)
    active = _active_material(organization_id)
    result = RotationResult()
    if active is None:
        return result
    result.version = active.version
    old_ids = [k.id for k in _scope_rows(organization_id) if k.id != active.id]
    targets = list(_references(organization_id, old_ids))
    result.total = sum(qs.count() for _, _, qs in targets)
    progress("secrets", 0, result.total)
    for model, model_field, qs in targets:
        pk = model._meta.pk
        label = model._meta.label_lower
        ordered = qs.order_by("pk")
        last_pk = None
        while True:
            batch_qs = ordered if last_pk is None else ordered.filter(pk__gt=last_pk)
            batch = list(batch_qs.values_list("pk", model_field.attname)[:size])
            if not batch:
                break
            last_pk = batch[-1][0]
            updates = []
            for row_pk, stored in batch:
                context = SecretContext(
                    model=label,
                    field=model_field.name,
                    pk=str(row_pk),
                    organization_id=organization_id,
                )
                try:
                    updates.append(
                        (
                            row_pk,
                            str(stored),
                            reencrypt_value(str(stored), key=active, context=context),
                        )
                    )
                except CryptoError as exc:
                    result.failures.append(str(exc))
            result.done += _cas_update(
                table=model._meta.db_table,
                pk_column=pk.column,
                pk_type=pk.db_type(connection),
                column=model_field.column,
                rows=updates,
            )
            progress("secrets", result.done, result.total)
    logger.info(
        "secrets re-encrypted",
        extra={
            "scope": scope_label(organization_id),
            "data_key_version": active.version,
            "reencrypted": result.done,
            "total": result.total,
            "failures": len(result.failures),
        },
    )
    return result


def data_key_references(*, organization_id: uuid.UUID | None) -> dict[uuid.UUID, int]:
    """How many stored secrets each data key version of the scope encrypts."""
    counts = {}
    for key in _scope_rows(organization_id):
        counts[key.id] = sum(qs.count() for _, _, qs in _references(organization_id, [key.id]))
    return counts


def _transactions_open_since(moment) -> bool:
    """Whether another session of this database has a transaction that began before `moment`.
    Such a transaction may hold a write made under an old version that no query can see yet."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND xact_start < %s LIMIT 1",
            [moment],
        )
        return cursor.fetchone() is not None


def data_keys_prune(*, organization_id: uuid.UUID | None) -> list[int]:
    """Delete the scope's old data key versions that no secret uses. Returns the versions
    deleted; an empty list means "nothing yet", and a later run (the task) tries again.

    A version is deleted only when nothing references it at that instant:
    - the newest version must be older than the key cache lifetime, so no process still
      encrypts new values under an old one;
    - no other transaction may have been open since before that point (it could commit a value
      written under an old version after the check below);
    - each version is locked, re-checked and deleted in one transaction, so concurrent prunes
      and rotations of the scope serialise on it.
    Saving a model without assigning its secret never writes the column (see the field), so a
    stale instance cannot bring an old envelope back either.
    """
    from apps.core.models import DataKey

    keys = list(_scope_rows(organization_id))
    if len(keys) < 2:
        return []
    newest = keys[-1]
    cache_ttl = timedelta(seconds=settings.AUTOGLUE_DATA_KEY_CACHE_SECONDS)
    if newest.created_at > timezone.now() - cache_ttl - timedelta(seconds=5):
        return []
    if _transactions_open_since(newest.created_at + cache_ttl):
        logger.info(
            "data key prune postponed: a transaction older than the key cache is still open",
            extra={"scope": scope_label(organization_id)},
        )
        return []
    deleted = []
    for key in keys[:-1]:
        with transaction.atomic():
            locked = DataKey.objects.select_for_update().filter(pk=key.pk).first()
            if locked is None:
                continue
            if any(qs.exists() for _, _, qs in _references(organization_id, [key.id])):
                continue
            locked.delete()
        deleted.append(key.version)
    if deleted:
        logger.info(
            "old data key versions deleted",
            extra={"scope": scope_label(organization_id), "versions": deleted},
        )
    return deleted


def rotation_unfinished(*, organization_id: uuid.UUID | None) -> bool:
    """Whether secrets of the scope are still under a version older than its newest one: a
    rotation (or a prune's straggler pass) has not finished."""
    keys = list(_scope_rows(organization_id))
    old_ids = [k.id for k in keys[:-1]]
    return any(qs.exists() for _, _, qs in _references(organization_id, old_ids))


def org_data_key_rotate(
    *,
    organization_id: uuid.UUID | None,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> RotationResult:
    """Rotate one scope's data key: new version, then re-encrypt everything under older ones.

    If an earlier rotation did not finish (it crashed, or was killed at its time limit), this
    resumes it onto the same newest version, with only the rows still to do, instead of adding
    yet another version and starting over. Every batch commits on its own, so a run that always
    dies at the same point still gets further each time and finishes.
    """
    resumed = rotation_unfinished(organization_id=organization_id)
    if not resumed:
        data_key_rotate(organization_id=organization_id)
    result = secrets_reencrypt(
        organization_id=organization_id, batch_size=batch_size, progress=progress
    )
    result.resumed = resumed
    return result

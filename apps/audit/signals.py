"""Model signals that write the audit entries for changes, so no service has to remember to.

Audited: every concrete `OrgOwnedModel`, plus organizations, memberships, users and API keys.
Rows of a many-to-many `through` model are attachments (attach/detach entries); a membership
whose role changes is a `member.role_change`; a new API key is `key.create` and a new job run
`job.launch`; an admin `LogEntry` (every console action writes one) is a `console.action`.
Sign-ins through Django (the console) come from its auth signals.

What the signals cannot see: `QuerySet.update()` and `bulk_create()` (no per-row signals).
Services that attach with `bulk_create` call `audit_rows_attached`, and those that write a
resource with `update()` call `audit_row_updated`; status transitions made
with conditional updates (job claims, heartbeats) are bookkeeping, not resource changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from django.apps import apps
from django.contrib.auth import signals as auth_signals
from django.db import models
from django.db.models import signals

from apps.audit import events, redaction
from apps.audit.services import _safe_repr, audit_record

# Fields whose change alone is bookkeeping, not a change anyone needs to audit.
_IGNORED_FIELDS = frozenset(
    {"updated_at", "last_login", "last_used_at", "heartbeat_at", "attempts", "worker"}
)
_EXTRA_MODELS = ("orgs.Organization", "orgs.Membership", "accounts.User", "accounts.APIKey")
# Rows that are themselves logs or crypto bookkeeping.
_EXCLUDED = frozenset(
    {
        "jobs.joblog",
        "accounts.refreshtoken",
        "core.datakey",
        "audit.auditentry",
        "webhooks.webhookdelivery",
        "webhooks.webhookattempt",
    }
)

_audited: set[type[models.Model]] = set()
_through: set[type[models.Model]] = set()


def _organization_id(instance: models.Model) -> Any:
    if instance._meta.label_lower == "orgs.organization":
        return instance.pk
    return getattr(instance, "organization_id", None)


def _label(instance: models.Model) -> str:
    return instance._meta.label_lower


def _pre_save(sender: type[models.Model], instance: models.Model, raw: bool, **kwargs: Any) -> None:
    if raw or instance._state.adding or instance.pk is None:
        instance._audit_before = None  # type: ignore[attr-defined]
        return
    before = sender._base_manager.filter(pk=instance.pk).first()
    instance._audit_before = redaction.snapshot(before) if before else None  # type: ignore[attr-defined]


def _post_save(
    sender: type[models.Model], instance: models.Model, created: bool, raw: bool, **kwargs: Any
) -> None:
    if raw:
        return
    label = _label(instance)
    if label == "jobs.jobrun":
        if created:
            audit_record(
                event=events.JOB_LAUNCH,
                organization_id=instance.organization_id,  # type: ignore[attr-defined]
                object_type=label,
                object_id=instance.pk,
                object_repr=_safe_repr(instance),
                metadata={
                    "kind": instance.kind,  # type: ignore[attr-defined]
                    "subject_type": instance.subject_type,  # type: ignore[attr-defined]
                    "subject_id": str(instance.subject_id or ""),  # type: ignore[attr-defined]
                },
            )
        return
    after = redaction.snapshot(instance)
    before = getattr(instance, "_audit_before", None)
    instance._audit_before = None  # type: ignore[attr-defined]
    if created or before is None:
        event = events.RESOURCE_ATTACH if sender in _through else events.RESOURCE_CREATE
        if label == "accounts.apikey":
            event = events.KEY_CREATE
        changes = redaction.diff(None, after)
    else:
        fields = kwargs.get("update_fields")
        if fields:
            # save() accepts only concrete fields in update_fields, never a reverse relation.
            names = {
                sender._meta.get_field(f).attname  # type: ignore[union-attr]
                for f in fields
                if f != "pk"
            }
            after = {k: v for k, v in after.items() if k in names}
            before = {k: v for k, v in before.items() if k in names}
        changes = redaction.diff(before, after)
        if not set(changes) - _IGNORED_FIELDS:
            return
        event = events.RESOURCE_UPDATE
        if label == "orgs.membership" and "role" in changes:
            event = events.MEMBER_ROLE_CHANGE
    audit_record(
        event=event,
        organization_id=_organization_id(instance),
        object_type=label,
        object_id=instance.pk,
        object_repr=_safe_repr(instance),
        changes=changes,
    )


def _post_delete(sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
    event = events.RESOURCE_DETACH if sender in _through else events.RESOURCE_DELETE
    audit_record(
        event=event,
        organization_id=_organization_id(instance),
        object_type=_label(instance),
        object_id=instance.pk,
        object_repr=_safe_repr(instance),
        changes=redaction.diff(redaction.snapshot(instance), None),
    )


def _m2m_changed(
    sender: Any, instance: models.Model, action: str, model: Any, pk_set: Any, **kwargs: Any
) -> None:
    if type(instance) not in _audited or action not in ("post_add", "post_remove", "post_clear"):
        return
    event = events.RESOURCE_ATTACH if action == "post_add" else events.RESOURCE_DETACH
    audit_record(
        event=event,
        organization_id=_organization_id(instance),
        object_type=_label(instance),
        object_id=instance.pk,
        object_repr=_safe_repr(instance),
        metadata={
            "related_type": model._meta.label_lower,
            "related_ids": sorted(str(pk) for pk in (pk_set or [])),
        },
    )


def audit_rows_attached(rows: Sequence[models.Model]) -> None:
    """Attachments written with `bulk_create` (which sends no signals): one entry per row."""
    for row in rows:
        audit_record(
            event=events.RESOURCE_ATTACH,
            organization_id=_organization_id(row),
            object_type=_label(row),
            object_id=row.pk,
            object_repr=_safe_repr(row),
            changes=redaction.diff(None, redaction.snapshot(row)),
        )


def audit_row_updated(before: models.Model | None, after: models.Model) -> None:
    """A row changed with `QuerySet.update()` (which sends no signals): the entry a save would
    have written, from the row as read before and after the update."""
    if before is None:
        return
    changes = redaction.diff(redaction.snapshot(before), redaction.snapshot(after))
    if not set(changes) - _IGNORED_FIELDS:
        return
    audit_record(
        event=events.RESOURCE_UPDATE,
        organization_id=_organization_id(after),
        object_type=_label(after),
        object_id=after.pk,
        object_repr=_safe_repr(after),
        changes=changes,
    )


def _log_entry_saved(sender: Any, instance: Any, created: bool, raw: bool, **kwargs: Any) -> None:
    if raw or not created:
        return
    model = instance.content_type.model_class() if instance.content_type_id else None
    organization_id = None
    if model is not None and instance.object_id:
        if model._meta.label_lower == "orgs.organization":
            organization_id = instance.object_id
        elif any(f.name == "organization" for f in model._meta.concrete_fields):
            # Cross-org read on purpose: the console acts across organizations.
            organization_id = (
                model._base_manager.filter(pk=instance.object_id)
                .values_list("organization_id", flat=True)
                .first()
            )
    audit_record(
        event=events.CONSOLE_ACTION,
        organization_id=organization_id,
        object_type=model._meta.label_lower if model else "",
        object_id=instance.object_id or "",
        object_repr=instance.object_repr,
        metadata={
            "action": {1: "add", 2: "change", 3: "delete"}.get(instance.action_flag, "other"),
            "message": instance.get_change_message()[:1000],
        },
    )


def _signed_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    audit_record(
        event=events.AUTH_SIGN_IN,
        object_type="accounts.user",
        object_id=user.pk,
        object_repr=str(user),
        metadata={"method": "console"},
    )


def _sign_in_failed(sender: Any, credentials: dict, request: Any = None, **kwargs: Any) -> None:
    # Only the name tried: the credentials dict also holds the (masked) password.
    tried = credentials.get("username") or credentials.get("email") or ""
    audit_record(
        event=events.AUTH_SIGN_IN_FAILED,
        object_type="accounts.user",
        metadata={"method": "console", "username": str(tried)[:254]},
    )


def audited_models() -> set[type[models.Model]]:
    from apps.core.models import OrgOwnedModel

    found: set[type[models.Model]] = set()
    for model in apps.get_models():
        label = model._meta.label_lower
        if label in _EXCLUDED or model._meta.proxy:
            continue
        if issubclass(model, OrgOwnedModel) or model._meta.label in _EXTRA_MODELS:
            found.add(model)
    found.add(apps.get_model("jobs", "JobRun"))
    return found


def connect() -> None:
    _audited.update(audited_models())
    for model in apps.get_models():
        for field in model._meta.many_to_many:
            # A string `through` is resolved to its model once the app registry is ready.
            through = cast("type[models.Model]", field.remote_field.through)
            if through in _audited:
                _through.add(through)
            else:
                signals.m2m_changed.connect(
                    _m2m_changed, sender=through, dispatch_uid=f"audit-m2m-{through._meta.label}"
                )
    for model in _audited:
        uid = f"audit-{model._meta.label}"
        if model._meta.label_lower != "jobs.jobrun":
            signals.pre_save.connect(_pre_save, sender=model, dispatch_uid=uid)
            signals.post_delete.connect(_post_delete, sender=model, dispatch_uid=uid)
        signals.post_save.connect(_post_save, sender=model, dispatch_uid=uid)
    from django.contrib.admin.models import LogEntry

    signals.post_save.connect(_log_entry_saved, sender=LogEntry, dispatch_uid="audit-logentry")
    auth_signals.user_logged_in.connect(_signed_in, dispatch_uid="audit-signed-in")
    auth_signals.user_login_failed.connect(_sign_in_failed, dispatch_uid="audit-sign-in-failed")

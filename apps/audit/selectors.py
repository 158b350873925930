"""Reads of the audit log for people: an object's history as the console shows it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Q
from django.db.models.fields.json import KeyTextTransform

from apps.audit import events
from apps.audit.models import AuditEntry
from apps.audit.redaction import REDACTED

# How many entries an object's history page shows (newest first); the audit log has the rest.
HISTORY_LIMIT = 200


@dataclass
class FieldChange:
    """One field of an entry: its value before and after, or only that a secret changed."""

    name: str
    before: str = ""
    after: str = ""
    secret: bool = False
    has_before: bool = False
    has_after: bool = False


@dataclass
class HistoryEntry:
    occurred_at: datetime
    event: str
    actor_type: str
    actor_id: str
    actor_label: str
    object_type: str
    object_id: str
    message: str = ""
    changes: list[FieldChange] = field(default_factory=list)
    # The console page of the run behind the entry (set by the console), "" if none.
    job_url: str = ""


def _shown(value: Any) -> str:
    """A stored value as a person reads it: nothing is "—", lists and objects as JSON."""
    if value is None or value == "":
        return "—"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _field_changes(changes: dict[str, Any]) -> list[FieldChange]:
    rows = []
    for name, values in sorted((changes or {}).items()):
        if not isinstance(values, dict):
            continue
        before, after = values.get("before"), values.get("after")
        rows.append(
            FieldChange(
                name=name,
                # Secrets were never stored: the entry says only that the value changed.
                before="" if before == REDACTED else _shown(before),
                after="" if after == REDACTED else _shown(after),
                secret=REDACTED in (before, after),
                has_before="before" in values,
                has_after="after" in values,
            )
        )
    return rows


def _message(entry: AuditEntry) -> str:
    metadata = entry.metadata or {}
    if entry.event == events.JOB_LAUNCH:
        return f"{metadata.get('kind', 'job')} queued"
    if entry.event == events.CONSOLE_ACTION:
        return str(metadata.get("message") or metadata.get("action") or "")
    return ""


def object_history(
    *,
    object_type: str,
    object_id: Any,
    organization_id: Any,
    limit: int = HISTORY_LIMIT,
    related: Sequence[tuple[str, str, Sequence[Any]]] = (),
) -> list[HistoryEntry]:
    """The entries about one object of one organization, newest first: its own changes (by
    people, keys, jobs or the system), console actions on it, and the runs launched for it (a
    bootstrap the sweep started, a reconcile), in two indexed queries merged here."""
    # Two queries, each answered by its own index (audit_entry_org_object_time and the partial
    # audit_entry_launch_subject); one query with an OR of both would read every entry of the
    # organization.
    fields = (
        "occurred_at",
        "event",
        "actor_type",
        "actor_id",
        "actor_label",
        "object_type",
        "object_id",
        "changes",
        "metadata",
    )
    own = AuditEntry.objects.filter(
        organization_id=organization_id, object_type=object_type, object_id=str(object_id)
    )
    launches = AuditEntry.objects.annotate(
        launch_subject=KeyTextTransform("subject_id", "metadata")
    ).filter(
        event=events.JOB_LAUNCH, launch_subject=str(object_id), organization_id=organization_id
    )
    querysets = [own, launches]
    # Rows pointing at the object (a pool attached to a cluster, its metadata): `related` names
    # each row type, the column holding the object's id, and the ids of such rows that exist
    # now; rows since removed are found by the entries that created or deleted them.
    for child_type, column, current_ids in related:
        of_type = AuditEntry.objects.filter(organization_id=organization_id, object_type=child_type)
        pointing = Q(**{f"changes__{column}__after": str(object_id)}) | Q(
            **{f"changes__{column}__before": str(object_id)}
        )
        child_ids = {str(pk) for pk in current_ids}
        child_ids.update(of_type.filter(pointing).values_list("object_id", flat=True)[:limit])
        if child_ids:
            querysets.append(of_type.filter(object_id__in=child_ids))
    merged: dict[Any, AuditEntry] = {}
    for queryset in querysets:
        for row in queryset.only(*fields).order_by("-occurred_at")[:limit]:
            merged[row.pk] = row
    rows = sorted(merged.values(), key=lambda row: row.occurred_at, reverse=True)[:limit]
    return [
        HistoryEntry(
            occurred_at=row.occurred_at,
            event=row.event,
            actor_type=row.actor_type,
            actor_id=row.actor_id,
            actor_label=row.actor_label,
            object_type=row.object_type,
            object_id=row.object_id,
            message=_message(row),
            changes=_field_changes(row.changes),
        )
        for row in rows
    ]

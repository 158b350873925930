"""Helpers for the audit tests."""

from __future__ import annotations

from typing import Any

from apps.audit.models import AuditEntry
from apps.audit.services import audit_seal_pending


def assert_entry(event: str, **fields: Any) -> AuditEntry:
    """The newest entry of `event` matching `fields` (fails with what was written instead).
    Every event type in apps.audit.events must be asserted through this helper somewhere in
    these tests (test_event_coverage checks)."""
    entries = AuditEntry.objects.filter(event=event, **fields).order_by("-occurred_at", "-seq")
    entry = entries.first()
    if entry is None:
        written = list(
            AuditEntry.objects.order_by("occurred_at").values_list("event", "object_type")
        )
        raise AssertionError(f"no {event} entry with {fields}; written: {written}")
    return entry


def all_entry_text() -> str:
    """Every stored column of every entry, as one string (for canary searches)."""
    rows = AuditEntry.objects.values_list(
        "actor_label",
        "object_repr",
        "object_id",
        "changes",
        "metadata",
        "user_agent",
        "ip",
    )
    return "\n".join(repr(row) for row in rows)


def sealed(entries: list[AuditEntry] | None = None) -> list[AuditEntry]:
    """Seal what is waiting, as the on-commit sealer does once a real transaction commits (a
    `db` test's transaction never does), and return `entries` as stored now, in chain order."""
    audit_seal_pending()
    if not entries:
        return []
    return list(AuditEntry.objects.filter(pk__in=[e.pk for e in entries]).order_by("seq"))

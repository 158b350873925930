"""Retention for the audit log and idempotency keys (daily, on the maintenance queue)."""

from __future__ import annotations

from celery import shared_task

from apps.audit import idempotency, services


@shared_task(name="audit.prune")
def audit_prune() -> dict[str, int]:
    return {
        "audit_entries": services.audit_prune(),
        "idempotency_keys": idempotency.idempotency_prune(),
    }

"""Retention for the audit log and idempotency keys (daily), and the sealer's catch-up (every
10 seconds), on the maintenance queue."""

from __future__ import annotations

from celery import shared_task

from apps.audit import idempotency, services


@shared_task(name="audit.prune")
def audit_prune() -> dict[str, int]:
    return {
        "audit_entries": services.audit_prune(),
        "idempotency_keys": idempotency.idempotency_prune(),
    }


@shared_task(name="audit.seal")
def audit_seal() -> int:
    """Seal entries whose own on-commit sealer never ran (normally none)."""
    return services.audit_seal_pending()


@shared_task(name="audit.verify")
def audit_verify() -> dict[str, int]:
    """Verify every chain and record the outcome (daily, schedule "audit-verify")."""
    reports = services.audit_verify_record()
    return {"chains": len(reports), "broken": sum(1 for r in reports if r.broken is not None)}

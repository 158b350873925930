"""The DNS job handlers: thin wrappers that hand the job's log and cancel check to services."""

from __future__ import annotations

import uuid
from typing import Any

from apps.dns import services
from apps.jobs.runner import JobContext, JobFailed


def dns_reconcile(ctx: JobContext) -> dict[str, Any]:
    payload = ctx.job.payload
    return services.domain_reconcile(
        domain_id=ctx.job.subject_id,
        mode=payload.get("mode", "auto"),
        plan_id=payload.get("plan_id"),
        log=ctx.log.system,
        check=ctx.check,
    )


def dns_purge(ctx: JobContext) -> dict[str, Any]:
    payload = ctx.job.payload
    organization_id = ctx.job.organization_id
    if organization_id is None:  # domain_delete always names the domain's organization
        raise JobFailed("the purge names no organization; its records stay in Route 53")
    return services.domain_purge(
        organization_id=organization_id,
        zone_id=payload["zone_id"],
        credential_id=uuid.UUID(payload["credential_id"]),
        domain_name=payload["domain_name"],
        log=ctx.log.system,
        check=ctx.check,
    )

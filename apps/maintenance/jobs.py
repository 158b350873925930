"""Job handlers: each maintenance job logs what it did and returns its counts as the result."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from apps.jobs.runner import JobContext, JobFailed
from apps.maintenance import services
from apps.webhooks import services as webhook_services

# Sweeps stop between batches with this much of their time budget left, and finish cleanly.
STOP_MARGIN_SECONDS = 30.0


def _should_stop(ctx: JobContext):  # type: ignore[no-untyped-def]
    def should_stop() -> bool:
        ctx.check()
        return ctx.remaining() < STOP_MARGIN_SECONDS

    return should_stop


def backup_job(ctx: JobContext) -> dict[str, Any]:
    try:
        backup = services.backup_create(progress=ctx.log.system, check=ctx.check, job_id=ctx.job.pk)
        pruned = services.backup_prune(progress=ctx.log.system)
    except services.BackupError as exc:
        raise JobFailed(str(exc)) from None
    return {
        "backup_id": str(backup.pk),
        "object_key": backup.object_key,
        "size_bytes": backup.size_bytes,
        "dump_bytes": backup.dump_bytes,
        "sha256": backup.sha256,
        **{f"retention_{k}": v for k, v in pruned.items()},
    }


def api_key_sweep_job(ctx: JobContext) -> dict[str, Any]:
    return services.api_keys_sweep(progress=ctx.log.system, should_stop=_should_stop(ctx))


def refresh_token_purge_job(ctx: JobContext) -> dict[str, Any]:
    return services.refresh_tokens_purge(progress=ctx.log.system, should_stop=_should_stop(ctx))


def job_retention_job(ctx: JobContext) -> dict[str, Any]:
    result = services.job_records_purge(progress=ctx.log.system, should_stop=_should_stop(ctx))
    # The webhook delivery log is kept as long as job records (JOB_RETENTION_DAYS).
    purged = webhook_services.webhook_deliveries_purge(should_stop=_should_stop(ctx))
    ctx.log.system(
        f"deleted {purged['deliveries_deleted']} webhook deliveries and "
        f"{purged['events_deleted']} events older than {settings.JOB_RETENTION_DAYS} days"
    )
    return {**result, **purged}


def vacuum_job(ctx: JobContext) -> dict[str, Any]:
    return services.tables_vacuum(progress=ctx.log.system)

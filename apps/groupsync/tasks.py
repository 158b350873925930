"""Celery tasks of the groupsync app (thin: they call services)."""

from __future__ import annotations

from celery import shared_task

from apps.groupsync import services

# One organization's run: its lock is held at most this long should the worker die mid-run.
ORG_SOFT_LIMIT = 1800


@shared_task(name="groupsync.sync", ignore_result=True)
def sync() -> int:
    """The django-celery-beat row "groupsync-sync": queue one run per organization, the
    longest unsynced first, so a slow organization does not hold up the others."""
    due = services.group_sync_due()
    for config_id in due:
        sync_organization.apply_async(args=[str(config_id)], queue="maintenance")
    return len(due)


@shared_task(
    name="groupsync.sync_organization",
    soft_time_limit=ORG_SOFT_LIMIT,
    time_limit=ORG_SOFT_LIMIT + 60,
    ignore_result=True,
)
def sync_organization(config_id: str) -> int | None:
    """Re-read the Google groups of one organization's members (skipped while a run for the
    same organization is still going)."""
    return services.group_sync_organization_once(
        config_id=config_id, hold_seconds=ORG_SOFT_LIMIT + 120
    )

"""Celery tasks of the groupsync app (thin: they call services)."""

from __future__ import annotations

from celery import shared_task

from apps.groupsync import services


@shared_task(name="groupsync.sync", soft_time_limit=1800, time_limit=1860, ignore_result=True)
def sync() -> int:
    """Re-read every member's Google groups (django-celery-beat row "groupsync-sync")."""
    return services.group_sync_all()

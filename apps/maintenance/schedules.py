"""Interval settings that take effect on an installation that is already running.

The data migrations create every periodic task from its interval setting once; after that the
row is the schedule (an operator may pause or re-time it in the console). An interval setting
that is *given* in the environment (`NAME` or `NAME_FILE`) is the operator saying so on
purpose: every `migrate` (which `runplatform` and the image's start run) puts it back on the row.
An interval left unset keeps whatever the row holds.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

# Periodic task name -> (interval setting, django-celery-beat period).
SCHEDULE_INTERVALS: dict[str, tuple[str, str]] = {
    "bastion-sweep": ("BASTION_SWEEP_INTERVAL_SECONDS", "seconds"),
    "jobs-reap": ("JOB_REAP_INTERVAL_SECONDS", "seconds"),
    "dns-reconcile": ("DNS_RECONCILE_INTERVAL_SECONDS", "seconds"),
    "groupsync-sync": ("GROUP_SYNC_INTERVAL_MINUTES", "minutes"),
    "maintenance-backup": ("BACKUP_INTERVAL_HOURS", "hours"),
    "maintenance-api-key-sweep": ("MAINTENANCE_SWEEP_INTERVAL_MINUTES", "minutes"),
    "maintenance-refresh-token-purge": ("MAINTENANCE_SWEEP_INTERVAL_MINUTES", "minutes"),
    "maintenance-job-retention": ("MAINTENANCE_SWEEP_INTERVAL_MINUTES", "minutes"),
    "maintenance-vacuum": ("MAINTENANCE_VACUUM_INTERVAL_HOURS", "hours"),
}


def _given(setting: str) -> bool:
    return bool(os.environ.get(setting) or os.environ.get(f"{setting}_FILE"))


def schedules_apply_settings(*, using: str = "default") -> list[str]:
    """Put each interval given in the environment on its periodic task; the names changed. A
    task an operator moved to a crontab (or solar, or clocked) schedule is left as it is: that
    is a choice no interval setting can express."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    changed = []
    for name, (setting, period) in SCHEDULE_INTERVALS.items():
        if not _given(setting):
            continue
        every = int(getattr(settings, setting))
        tasks = PeriodicTask.objects.using(using).select_related("interval")
        task = tasks.filter(name=name).first()
        if task is None or task.interval is None:
            continue
        if (task.interval.every, task.interval.period) == (every, period):
            continue
        task.interval, _ = IntervalSchedule.objects.using(using).get_or_create(
            every=every, period=period
        )
        # save() (not update()) so django-celery-beat tells a running beat the schedule changed.
        task.save(using=using)
        changed.append(name)
    return changed


def apply_after_migrate(*, using: str = "default", **kwargs: Any) -> None:
    """post_migrate receiver: the schedules' rows exist by then, on a fresh database too. A
    schedule it cannot update is logged, never a failed `migrate` (the start would stop)."""
    from django.db import connections

    if "django_celery_beat_periodictask" not in connections[using].introspection.table_names():
        return  # beat's tables were migrated away (`migrate django_celery_beat zero`)
    try:
        changed = schedules_apply_settings(using=using)
    except Exception:  # noqa: BLE001 - see the docstring
        logger.warning("could not apply interval settings to the schedules", exc_info=True)
        return
    if changed:
        logger.info("schedules re-timed from the environment: %s", ", ".join(changed))

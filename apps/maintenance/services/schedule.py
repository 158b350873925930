"""Scheduled ticks: beat fires `maintenance.tick(kind)`; this decides whether it becomes a job.

Two beats (or a duplicated message) must not run the same tick twice. The jobs framework already
refuses a second *active* run per kind and subject, and every scheduled run of a kind shares one
subject id; a second beat's tick that arrives after the first run has already *finished* is
refused here: a scheduled run of the kind queued within half the schedule's interval means this
tick was taken. The check and the insert happen under a transaction-scoped advisory lock per
kind, so two ticks arriving together are serialised and the second sees the first's row.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from apps.core.api.errors import conflict
from apps.jobs.models import JobRun
from apps.jobs.services import JobActive, job_enqueue

# Periodic task name per job kind (created by this app's migrations).
SCHEDULES = {
    "backup": "maintenance-backup",
    "api_key_sweep": "maintenance-api-key-sweep",
    "refresh_token_purge": "maintenance-refresh-token-purge",
    "job_retention": "maintenance-job-retention",
    "vacuum": "maintenance-vacuum",
}
# When the schedule is not an interval (an operator switched it to a crontab in the admin).
DEFAULT_SPACING = timedelta(seconds=30)
_NAMESPACE = uuid.UUID("6f1c3a52-5f0e-4bb5-9c1e-6a0d7a4f2e11")


def tick_subject(kind: str) -> uuid.UUID:
    """The subject every scheduled run of a kind shares: one active run per kind."""
    return uuid.uuid5(_NAMESPACE, f"maintenance:{kind}")


def _lock_id(kind: str) -> int:
    return int.from_bytes(
        hashlib.sha256(f"maintenance-tick:{kind}".encode()).digest()[:8], "big", signed=True
    )


def tick_spacing(schedule_name: str) -> timedelta:
    """Half the interval of the named periodic task: ticks closer than that are one tick."""
    task = PeriodicTask.objects.select_related("interval").filter(name=schedule_name).first()
    if task is None or task.interval is None:
        return DEFAULT_SPACING
    return task.interval.schedule.run_every / 2


def maintenance_tick(*, kind: str, schedule_name: str = "") -> JobRun | None:
    """Turn a beat tick into a queued job of `kind`, unless this tick was already taken (by
    another beat) or a run of the kind is still active. None when nothing was queued."""
    if kind not in SCHEDULES:
        raise LookupError(f"unknown maintenance kind {kind!r}")
    if kind == "backup" and not settings.BACKUP_ENABLED:
        return None
    spacing = tick_spacing(schedule_name or SCHEDULES[kind])
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_lock_id(kind)])
        # Only scheduled runs take a tick: a manual "Back up now" (payload scheduled=False),
        # failed or not, must not cancel the next scheduled backup.
        taken = JobRun.objects.filter(
            kind=kind,
            subject_id=tick_subject(kind),
            payload__scheduled=True,
            queued_at__gt=timezone.now() - spacing,
        ).exists()
        if taken:
            return None
        try:
            # The schedule's name travels with the run: its success is the schedule's.
            return job_enqueue(
                kind=kind,
                subject_id=tick_subject(kind),
                payload={"scheduled": True, "schedule": schedule_name or SCHEDULES[kind]},
            )
        except JobActive:
            return None


def backup_start_now() -> JobRun:
    """A backup now, for a platform admin ("Back up now" in the console): the scheduled job
    itself, under the schedule's subject, so it never runs beside a scheduled one. Refused
    (409) when backups are off or one is already queued or running (its run is named)."""
    if not settings.BACKUP_ENABLED:
        raise conflict("backups_disabled", "backups are off (BACKUP_ENABLED is not set)")
    try:
        return job_enqueue(
            kind="backup", subject_id=tick_subject("backup"), payload={"scheduled": False}
        )
    except JobActive as exc:
        running = f" (run {exc.job.pk})" if exc.job is not None else ""
        raise conflict("job_active", f"a backup is already queued or running{running}") from None

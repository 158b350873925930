"""Beat's entry point for maintenance: a thin task that turns a tick into a job run."""

from __future__ import annotations

from celery import shared_task

from apps.maintenance import services


@shared_task(
    name="maintenance.tick", bind=True, soft_time_limit=60, time_limit=90, ignore_result=True
)
def tick(self, kind: str) -> str:  # type: ignore[no-untyped-def]
    """Queue one run of a maintenance kind for this tick (see services.maintenance_tick).
    django-celery-beat names the periodic task in the message headers; its interval decides
    which ticks count as the same one."""
    job = services.maintenance_tick(
        kind=kind, schedule_name=getattr(self.request, "periodic_task_name", "") or ""
    )
    return str(job.pk) if job else "skipped"

"""The Celery side of jobs: thin tasks that call the services."""

from __future__ import annotations

import socket

from celery import shared_task

from apps.jobs import runner, services


@shared_task(name=services.TASK_NAME, bind=True, acks_late=True, ignore_result=True)
def run(self, job_id: str) -> str:  # type: ignore[no-untyped-def]
    """Execute one job run (see apps.jobs.runner). A duplicate delivery finds the run already
    claimed and does nothing."""
    return runner.job_execute(
        job_id=job_id,
        task_id=self.request.id or "",
        worker=self.request.hostname or socket.gethostname(),
    )


@shared_task(name="jobs.reap", soft_time_limit=60, time_limit=90, ignore_result=True)
def reap() -> dict:
    """Recover runs whose worker died and re-send lost messages (every 30 s)."""
    return services.job_reap()

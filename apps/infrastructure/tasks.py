"""Celery tasks of the infrastructure app: thin, ids only."""

from __future__ import annotations

from celery import shared_task

from apps.infrastructure import bootstrap


@shared_task(
    name="infrastructure.bastion_sweep", soft_time_limit=60, time_limit=90, ignore_result=True
)
def bastion_sweep() -> dict:
    """Queue a bootstrap for every pending bastion (beat, every 30 s)."""
    return bootstrap.bastion_sweep()

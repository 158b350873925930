"""Helpers for the console's tests."""

from __future__ import annotations

from typing import Any

from apps.jobs.models import JobRun

PASSWORD = "CANARY-break-glass-password-1"


def job_run(**fields: Any) -> JobRun:
    """A job run as the jobs framework writes it (the console's tests only read runs)."""
    return JobRun.objects.create(**{"kind": "bastion_sweep", "queue": "maintenance", **fields})

"""Platform jobs a platform admin may start by hand (POST /admin/archer/jobs)."""

from __future__ import annotations

from typing import Any

from apps.core.api.errors import bad_request
from apps.jobs import registry, services
from apps.jobs.models import JobRun

_BEAT_ONLY_KEYS = frozenset({"scheduled", "schedule"})


def enqueue(*, kind: str, payload: dict[str, Any], run_at: Any = None) -> JobRun:
    """Queue one run of a platform job kind now (or at `run_at`). Kinds that work on a tenant's
    object (a bastion bootstrap, a cluster action) start from that object's own route instead."""
    allowed = [name for name in registry.names() if registry.get(name).admin_enqueue]
    try:
        spec = registry.get(kind)
    except LookupError:
        spec = None
    if spec is None or not spec.admin_enqueue:
        raise bad_request("unknown_type", f"type: must be one of {allowed}")
    # Only beat's tick marks a run as the schedule's (apps.maintenance): a run started here is
    # a hand-started one, whatever its payload says (it must not start a schedule's "never
    # succeeded" clock, nor take a tick).
    payload = {key: value for key, value in payload.items() if key not in _BEAT_ONLY_KEYS}
    try:
        return services.job_enqueue(kind=kind, payload=payload, run_at=run_at)
    except services.JobActive as exc:
        raise bad_request("job_active", str(exc)) from None

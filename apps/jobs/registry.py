"""The job kinds: what runs a kind, on which queue, for how long, and what to do with its subject
when a run is abandoned (its worker died, or it was canceled before it started).

Apps register their kinds in `AppConfig.ready()`; handlers are named by dotted path and imported
only when a job runs, so this module imports no app.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from apps.jobs.context import JobContext
    from apps.jobs.models import JobRun

# Queues: SSH work is I/O-bound and long (a thread pool, many at once); maintenance is the
# periodic house-keeping; default is everything else.
QUEUE_SSH = "ssh"
QUEUE_MAINTENANCE = "maintenance"
QUEUE_DEFAULT = "default"
# Webhook deliveries (apps.webhooks): not job runs, but a queue a worker must consume all the same.
QUEUE_WEBHOOKS = "webhooks"


@dataclass(frozen=True)
class JobKind:
    name: str
    # "module.function": `function(ctx: JobContext) -> dict | None`.
    handler: str
    queue: str = QUEUE_DEFAULT
    # Name of the setting holding the run's time budget in seconds.
    timeout_setting: str = "JOB_DEFAULT_TIMEOUT_SECONDS"
    # True when running the job again after a lost worker has no effect the first run did not
    # already have (e.g. the bastion bootstrap script); such runs are requeued by the reaper.
    idempotent: bool = False
    max_attempts: int = 1
    # Whether a platform admin may retry a failed run of this kind as it was.
    retryable: bool = True
    # Whether a platform admin may start one through POST /admin/archer/jobs (platform jobs
    # with no subject; work on a tenant's object starts from that object's own route).
    admin_enqueue: bool = False
    # "module.function": `function(job: JobRun, status: str, error: str) -> None`, called
    # whenever a run ends other than `succeeded` (it failed, timed out, was canceled, or its
    # worker died), so the subject (a server, a cluster run) never stays "provisioning".
    on_failure: str = ""
    # The periodic schedule (django-celery-beat row name) that a successful run of this kind
    # counts for, whoever started the run (a tick or an admin): the metric
    # `autoglue_schedule_last_success_timestamp_seconds` is fed from here, never from a payload.
    schedule: str = ""

    @property
    def timeout_seconds(self) -> int:
        return int(getattr(settings, self.timeout_setting))

    def resolve_handler(self) -> Callable[[JobContext], dict[str, Any] | None]:
        return import_string(self.handler)

    def fail_subject(self, job: JobRun, status: str, error: str) -> None:
        if self.on_failure:
            import_string(self.on_failure)(job, status, error)


_KINDS: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    _KINDS[kind.name] = kind
    return kind


def schedule_of(name: str) -> str:
    """The schedule a successful run of kind `name` counts for ("" for none, or unknown)."""
    kind = _KINDS.get(name)
    return kind.schedule if kind else ""


# How a run ends (JobRun.Status' final values; the model is not imported here).
OUTCOMES = ("succeeded", "failed", "canceled")


def prime_counters() -> None:
    """Create the finished counter and the duration histogram at 0 for every registered kind
    and outcome, so a process's first failure is an increase from 0 that `increase()` sees,
    not a new series it cannot. Called when a worker process starts (autoglue/celery.py)."""
    from apps.core import metrics

    for kind in _KINDS:
        for outcome in OUTCOMES:
            metrics.jobs_finished.labels(kind, outcome)
            metrics.job_duration.labels(kind, outcome)


def schedules() -> set[str]:
    """Every schedule a registered kind counts for."""
    return {kind.schedule for kind in _KINDS.values() if kind.schedule}


def get(name: str) -> JobKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise LookupError(f"unknown job kind {name!r}") from None


def names() -> list[str]:
    return sorted(_KINDS)


def queues() -> list[str]:
    """Every queue a registered kind runs on, and the four every installation has."""
    return sorted(
        {
            QUEUE_DEFAULT,
            QUEUE_MAINTENANCE,
            QUEUE_SSH,
            QUEUE_WEBHOOKS,
            *(k.queue for k in _KINDS.values()),
        }
    )

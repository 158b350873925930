"""The life of a job run: enqueue, claim, heartbeat, finish, cancel, retry, reap.

Every background job in Autoglue goes through these functions (`runner.job_execute` drives a
claimed run); each state change is a conditional update, so two workers, a duplicate delivery or
a reaper racing a slow worker can never both move the same run.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.audit import events as audit_events
from apps.audit import services as audit
from apps.core import events as core_events
from apps.core import metrics
from apps.jobs import broker, bus, registry
from apps.jobs.logs import one_line
from apps.jobs.models import JobLog, JobRun, ScheduleFirstRun, ScheduleSuccess
from autoglue import tracing

# JobRun.Meta's unique constraint on (kind, subject) among active runs.
ACTIVE_SUBJECT_CONSTRAINT = "jobs_jobrun_unique_active_subject"

logger = logging.getLogger(__name__)

TASK_NAME = "jobs.run"
# A run with no message yet (publishing failed, or its commit is a moment old) is sent by the
# reaper once it is this old: past the ordinary commit-to-publish gap, well before the resend
# period.
_UNSENT_GRACE = timedelta(seconds=5)


class JobActive(Exception):
    """A run of this kind is already queued or running for this subject."""

    def __init__(self, job: JobRun | None) -> None:
        self.job = job
        super().__init__(f"an active job already exists: {job.pk if job else 'unknown'}")


class JobStateError(Exception):
    """The requested change does not apply to the run's current status."""


def _send(job: JobRun, eta: Any = None) -> None:
    """Publish the Celery message for a run (ids only). Called after commit."""
    from autoglue.celery import app

    kind = registry.get(job.kind)
    now = timezone.now()
    JobRun.objects.filter(pk=job.pk).update(sent_at=max(now, eta) if eta else now)
    if not settings.JOBS_PUBLISH:
        return
    try:
        app.send_task(
            TASK_NAME,
            args=[str(job.pk)],
            queue=kind.queue,
            task_id=f"{job.pk}:{uuid.uuid4().hex[:8]}",
            eta=eta if eta and eta > now else None,
            # The runner enforces the kind's budget; Celery's global limit (prefork workers)
            # must not cut a long job (a backup) short first.
            soft_time_limit=kind.timeout_seconds + 60,
            time_limit=kind.timeout_seconds + 120,
        )
    except Exception:
        # Not sent: the reaper's next tick sends it, rather than the resend period later.
        JobRun.objects.filter(pk=job.pk, status__in=JobRun.ACTIVE_STATUSES).update(sent_at=None)
        raise


def _send_on_commit(job: JobRun, eta: Any = None) -> None:
    def send() -> None:
        try:
            _send(job, eta)
        except Exception:  # noqa: BLE001 - the reaper re-sends; the request must not fail
            logger.exception("job message not published; the reaper will resend it")

    transaction.on_commit(send)


def job_enqueue(
    *,
    kind: str,
    organization_id: uuid.UUID | None = None,
    subject_type: str = "",
    subject_id: uuid.UUID | None = None,
    payload: dict[str, Any] | None = None,
    run_at: Any = None,
) -> JobRun:
    """Record a queued run and send its message once the surrounding transaction commits.

    Raises `JobActive` when the kind is already active for the subject (one bootstrap per
    server, one reconcile per zone). The row is written in the caller's transaction, so it
    exists exactly when the change that asked for it does.
    """
    spec = registry.get(kind)
    try:
        with transaction.atomic():
            job = JobRun.objects.create(
                kind=kind,
                queue=spec.queue,
                organization_id=organization_id,
                subject_type=subject_type,
                subject_id=subject_id,
                payload=payload or {},
                max_attempts=spec.max_attempts,
                trace_parent=tracing.current_traceparent(),
            )
    except IntegrityError as exc:
        if not _is_active_subject_conflict(exc):
            raise
        active = JobRun.objects.filter(
            kind=kind,
            subject_type=subject_type,
            subject_id=subject_id,
            status__in=JobRun.ACTIVE_STATUSES,
        ).first()
        raise JobActive(active) from None
    _send_on_commit(job, run_at)
    return job


def _is_active_subject_conflict(error: IntegrityError) -> bool:
    """True when `error` is the "one active run of a kind per subject" constraint; any other
    integrity error (a missing column default, a foreign key) is a fault, not a 409."""
    diag = getattr(error.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None) == ACTIVE_SUBJECT_CONSTRAINT


def job_claim(*, job_id: uuid.UUID | str, task_id: str = "", worker: str = "") -> JobRun | None:
    """Take a queued (or retrying) run for this worker: queued -> running. None when another
    delivery already took it, it was canceled, or it is gone: the caller then does nothing."""
    now = timezone.now()
    with transaction.atomic():
        claimed = _claim(job_id, now, task_id, worker)
        if not claimed:
            return None
        job = JobRun.objects.get(pk=job_id)
        # Listeners (the webhooks outbox) record the start with the claim.
        core_events.event_publish("job.started", job=job)
    return job


def _claim(job_id: uuid.UUID | str, now: Any, task_id: str, worker: str) -> int:
    return JobRun.objects.filter(
        pk=job_id,
        status__in=[JobRun.Status.QUEUED, JobRun.Status.RETRYING],
        cancel_requested=False,
    ).update(
        status=JobRun.Status.RUNNING,
        started_at=now,
        heartbeat_at=now,
        finished_at=None,
        celery_task_id=task_id[:255],
        worker=worker[:255],
        attempts=F("attempts") + 1,
        updated_at=now,
    )


def job_heartbeat(*, job: JobRun) -> bool:
    """Mark the run alive. Returns True when someone asked for it to be canceled."""
    now = timezone.now()
    alive = JobRun.objects.filter(
        pk=job.pk, status=JobRun.Status.RUNNING, attempts=job.attempts
    ).update(heartbeat_at=now, updated_at=now)
    # Not ours any more (reaped, or a later attempt took over): stop as if canceled.
    return not alive or JobRun.objects.filter(pk=job.pk, cancel_requested=True).exists()


def job_finish(
    *,
    job: JobRun,
    status: str,
    error: str = "",
    result: dict[str, Any] | None = None,
) -> bool:
    """End a running run in a final status. False when it was no longer running (the reaper
    ended it first); the caller's outcome is then dropped."""
    now = timezone.now()
    # `attempts` fences off a worker the reaper gave up on: its late outcome does not end the
    # attempt that replaced it.
    with transaction.atomic():
        ended = JobRun.objects.filter(
            pk=job.pk, status=JobRun.Status.RUNNING, attempts=job.attempts
        ).update(
            status=status,
            error=error[:10_000],
            result=result or {},
            finished_at=now,
            heartbeat_at=now,
            updated_at=now,
        )
        if ended:
            job.status, job.error, job.finished_at = status, error, now
            job.result = result or {}
            # Listeners (the webhooks outbox) record the outcome with it.
            core_events.event_publish("job.ended", job=job)
    if ended:
        _announce_end(job)
        _count_end(job, status, now)
        # The schedule comes from the kind's registration, not the payload: an admin-made run
        # cannot claim freshness for a schedule it does not belong to, and a manual backup
        # that succeeds is a fresh backup all the same.
        schedule = registry.schedule_of(job.kind)
        if status == JobRun.Status.SUCCEEDED and schedule:
            schedule_success_record(name=schedule, at=now)
        _first_run_record(job, now)
    return bool(ended)


def _first_run_record(job: JobRun, now: Any) -> None:
    """Start a schedule's "never succeeded" clock from a run of it that ended, however it
    ended. Only runs beat queued (payload `scheduled`): a hand-started run says nothing about
    whether the schedule itself works, and an operator's one failed try must not page."""
    schedule = registry.schedule_of(job.kind)
    if schedule and (job.payload or {}).get("scheduled") is True:
        schedule_run_record(name=schedule, at=now)


def schedule_run_record(*, name: str, at: Any = None) -> None:
    """Note that the periodic schedule `name` ran to an end (any outcome), if it is its first
    time: the metric `autoglue_schedule_first_run_timestamp_seconds` and the alerts
    AutoglueBackupNeverSucceeded and AutoglueScheduleNeverSucceeded read it. One statement
    that changes nothing after the first run, written once per finished scheduled run and per
    finished beat task.

    Best effort: it is bookkeeping for an alert, so a database error here is logged (the
    schedule's name only) and swallowed, inside a savepoint so a caller's transaction goes on;
    the run's outcome and success record never depend on it."""
    try:
        with transaction.atomic():
            ScheduleFirstRun.objects.bulk_create(
                [ScheduleFirstRun(name=name[:200], ran_at=at or timezone.now())],
                ignore_conflicts=True,
            )
    except DatabaseError as exc:
        logger.warning(
            "first run of schedule %s not recorded (%s)",
            name[:200],
            type(exc).__name__,
            extra={
                "event": "schedule_first_run_failed",
                "schedule": name[:200],
                "error_type": type(exc).__name__,
            },
        )


def schedule_success_record(*, name: str, at: Any = None) -> None:
    """Note that the periodic schedule `name` just finished successfully (the metric
    `autoglue_schedule_last_success_timestamp_seconds` and its alerts read it). A scheduled job
    run records it when it succeeds; a beat task that does its work itself, when it returns."""
    ScheduleSuccess.objects.update_or_create(
        name=name[:200], defaults={"succeeded_at": at or timezone.now()}
    )


def _count_end(job: JobRun, status: str, now: Any) -> None:
    """Count a run that ended, in whichever process ended it (the runner, the reaper giving up
    on a lost worker, a cancel before it started): the finished counter and, for a run that
    started, its duration. Kind labels come from the registry only."""
    kind = job.kind if _known(job.kind) else "unknown"
    metrics.jobs_finished.labels(kind, status).inc()
    if job.started_at:
        metrics.job_duration.labels(kind, status).observe(
            max((now - job.started_at).total_seconds(), 0.0)
        )


def _known(kind: str) -> bool:
    try:
        registry.get(kind)
    except LookupError:
        return False
    return True


def _announce_end(job: JobRun) -> None:
    channels = [bus.job_channel(job.pk)]
    if job.subject_id:
        channels.append(bus.subject_channel(job.subject_type, job.subject_id))
    bus.publish(channels, "end")


def _log_system(job: JobRun, text: str) -> None:
    JobLog.objects.create(
        job=job,
        organization_id=job.organization_id,
        subject_type=job.subject_type,
        subject_id=job.subject_id,
        stream=JobLog.Stream.SYSTEM,
        chunk=one_line(text.removesuffix("\n")) + "\n",
    )


def _abandon(job: JobRun, status: str, error: str) -> None:
    """End a run its handler will never finish, and put its subject in a final state too."""
    now = timezone.now()
    ended = JobRun.objects.filter(pk=job.pk, status__in=JobRun.ACTIVE_STATUSES).update(
        status=status, error=error[:10_000], finished_at=now, updated_at=now
    )
    if not ended:
        return
    job.status, job.error, job.finished_at = status, error, now
    core_events.event_publish("job.ended", job=job)
    _count_end(job, status, now)
    _log_system(job, error)
    if job.started_at:
        # A scheduled run whose worker dies every time never reaches job_finish.
        _first_run_record(job, now)
    with contextlib.suppress(LookupError):
        registry.get(job.kind).fail_subject(job, status, error)
    transaction.on_commit(lambda: _announce_end(job))


@transaction.atomic
def job_request_cancel(*, job: JobRun) -> JobRun:
    """Cancel a run. A queued run ends `canceled` at once; a running one is asked to stop (its
    runner sees the flag within a heartbeat, stops the remote process and ends `canceled`)."""
    locked = JobRun.objects.select_for_update().get(pk=job.pk)
    if locked.status in JobRun.ACTIVE_STATUSES:
        audit.audit_object_event(event=audit_events.JOB_CANCEL, obj=locked)
    if locked.status in (JobRun.Status.QUEUED, JobRun.Status.RETRYING):
        _abandon(locked, JobRun.Status.CANCELED, "canceled before it started")
    elif locked.status == JobRun.Status.RUNNING:
        JobRun.objects.filter(pk=locked.pk).update(cancel_requested=True, updated_at=timezone.now())
    else:
        raise JobStateError(f"job is already {locked.status}")
    locked.refresh_from_db()
    return locked


@transaction.atomic
def job_retry(*, job: JobRun) -> JobRun:
    """Run a failed or canceled run again, as it was (platform admins)."""
    locked = JobRun.objects.select_for_update().get(pk=job.pk)
    if locked.status not in (JobRun.Status.FAILED, JobRun.Status.CANCELED):
        raise JobStateError(f"only a failed or canceled job can be retried (it is {locked.status})")
    try:
        spec = registry.get(locked.kind)
    except LookupError:
        raise JobStateError(f"unknown job kind {locked.kind!r}") from None
    if not spec.retryable:
        raise JobStateError(f"{locked.kind} runs cannot be retried; start a new one")
    try:
        with transaction.atomic():
            JobRun.objects.filter(pk=locked.pk).update(
                status=JobRun.Status.QUEUED,
                cancel_requested=False,
                error="",
                finished_at=None,
                max_attempts=locked.attempts + spec.max_attempts,
                queued_at=timezone.now(),
                updated_at=timezone.now(),
                trace_parent=tracing.current_traceparent(),
            )
    except IntegrityError as exc:
        if not _is_active_subject_conflict(exc):
            raise
        raise JobStateError("another run of this kind is active for the same subject") from None
    locked.refresh_from_db()
    _send_on_commit(locked)
    return locked


def _stale_after() -> timedelta:
    """How long a running run may be silent: the setting, but never under three heartbeats, so
    a longer heartbeat set alone cannot make the reaper take live workers for dead ones."""
    return timedelta(
        seconds=max(
            float(settings.JOB_HEARTBEAT_STALE_SECONDS), 3 * float(settings.JOB_HEARTBEAT_SECONDS)
        )
    )


def job_reap(*, now: Any = None) -> dict[str, int]:
    """Recover runs whose worker died, and runs whose message was lost.

    - running with no heartbeat for JOB_HEARTBEAT_STALE_SECONDS (at least three heartbeats):
      requeued when the kind is idempotent and has attempts left, otherwise ended `failed` (a
      cluster action is never run twice behind an operator's back);
    - queued or retrying and never claimed: the message is sent again when it was sent more than
      JOB_RESEND_AFTER_SECONDS ago, when publishing it failed, or, for every such run at once,
      when the broker came back empty (`broker.broker_came_back_empty`). A duplicate is
      harmless: only one delivery can claim.

    Rows are locked with SKIP LOCKED, so two reapers (two beats, a doubled tick) share the work.
    """
    now = now or timezone.now()
    stale = now - _stale_after()
    resend_before = now - timedelta(seconds=settings.JOB_RESEND_AFTER_SECONDS)
    emptied = broker.broker_came_back_empty()
    counts = {"requeued": 0, "failed": 0, "resent": 0}
    with transaction.atomic():
        lost = list(
            JobRun.objects.select_for_update(skip_locked=True)
            .filter(status=JobRun.Status.RUNNING, heartbeat_at__lt=stale)
            .order_by("heartbeat_at")[:200]
        )
        for job in lost:
            try:
                spec: registry.JobKind | None = registry.get(job.kind)
            except LookupError:
                spec = None
            if spec is not None and spec.idempotent and job.attempts < job.max_attempts:
                JobRun.objects.filter(pk=job.pk).update(
                    status=JobRun.Status.RETRYING, updated_at=now, heartbeat_at=None
                )
                _log_system(
                    job, f"worker lost (no heartbeat since {job.heartbeat_at:%H:%M:%S}); retrying"
                )
                _send_on_commit(job)
                counts["requeued"] += 1
            else:
                # Always set (the query selected on it); the fallback only satisfies the types.
                since = job.heartbeat_at.isoformat() if job.heartbeat_at else "never"
                _abandon(
                    job,
                    JobRun.Status.FAILED,
                    f"worker lost: no heartbeat since {since} "
                    f"(attempt {job.attempts} of {job.max_attempts})",
                )
                counts["failed"] += 1
        waiting = JobRun.objects.select_for_update(skip_locked=True).filter(
            status__in=[JobRun.Status.QUEUED, JobRun.Status.RETRYING]
        )
        if emptied:
            # Every message the broker held is gone, a delayed one's (run_at) too.
            unsent = list(waiting.order_by("queued_at"))
        else:
            unsent = list(
                waiting.filter(
                    Q(sent_at__lt=resend_before)
                    | Q(sent_at__isnull=True, queued_at__lt=now - _UNSENT_GRACE)
                ).order_by("queued_at")[:200]
            )
        for job in unsent:
            _send_on_commit(job, job.sent_at if job.sent_at and job.sent_at > now else None)
            counts["resent"] += 1
    if any(counts.values()) or emptied:
        logger.info("job reaper", extra={"event": "job_reap", "broker_emptied": emptied, **counts})
    return counts

"""Running one claimed job: its context, heartbeat, deadline, cancellation and outcome.

The handler gets a `JobContext`: the run, its `LogWriter`, and a cancel signal. A heartbeat
thread marks the run alive every JOB_HEARTBEAT_SECONDS, flushes quiet logs every
JOB_LOG_FLUSH_SECONDS, and trips the cancel signal when an operator cancels the run or its time
budget is spent; handlers register `on_cancel` callbacks (close the SSH channel, stop the remote
process group) so a blocked read returns at once. Time limits are ours rather than Celery's
because SSH jobs run on a thread pool, where Celery's own limits do not apply.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import close_old_connections

from apps.audit.context import job_actor
from apps.jobs import registry
from apps.jobs.context import JobCanceled, JobContext, JobFailed
from apps.jobs.models import JobRun
from apps.jobs.services import job_claim, job_finish, job_heartbeat
from autoglue import tracing

logger = logging.getLogger(__name__)


class _Heartbeat(threading.Thread):
    def __init__(self, ctx: JobContext) -> None:
        super().__init__(name=f"job-heartbeat-{ctx.job.pk}", daemon=True)
        self.ctx = ctx
        self.stopped = threading.Event()

    def run(self) -> None:
        interval = float(settings.JOB_HEARTBEAT_SECONDS)
        # Lines a quiet job has buffered are stored every JOB_LOG_FLUSH_SECONDS, not only on a
        # heartbeat: a worker killed with SIGKILL loses at most that much of its transcript.
        tick = min(interval, float(settings.JOB_LOG_FLUSH_SECONDS))
        next_beat = time.monotonic() + interval
        try:
            while not self.stopped.wait(tick):
                try:
                    if time.monotonic() >= next_beat:
                        next_beat = time.monotonic() + interval
                        self._beat()
                    self.ctx.log.flush_if_due()
                except Exception:  # noqa: BLE001 - keep beating through a database blip
                    logger.warning("job heartbeat failed", exc_info=True)
                    close_old_connections()
        finally:
            close_old_connections()

    def _beat(self) -> None:
        if job_heartbeat(job=self.ctx.job):
            self.ctx.cancel("canceled by request")
        if self.ctx.remaining() <= 0:
            self.ctx.cancel(
                f"timed out after {self.ctx.timeout_seconds} s",
                status=JobRun.Status.FAILED,
            )


def job_execute(*, job_id: str, task_id: str = "", worker: str = "") -> str:
    """Claim and run one job; returns its final status ("skipped" if it was not claimable)."""
    job = job_claim(job_id=job_id, task_id=task_id, worker=worker)
    if job is None:
        return "skipped"
    attributes = {
        "autoglue.job.id": str(job.pk),
        "autoglue.job.queue": job.queue,
        "autoglue.job.attempt": job.attempts,
    }
    # Audit entries written while the job runs name it as their actor; its span continues the
    # trace of the request that queued it.
    with (
        job_actor(job),
        tracing.job_span(
            kind=job.kind, traceparent=job.trace_parent, attributes=attributes
        ) as span,
    ):
        status = _job_run(job)
        tracing.job_span_outcome(span, status)
        return status


def _job_run(job: JobRun) -> str:
    try:
        kind = registry.get(job.kind)
    except LookupError:
        job_finish(job=job, status=JobRun.Status.FAILED, error=f"unknown job kind {job.kind!r}")
        return JobRun.Status.FAILED
    ctx = JobContext(job, timeout_seconds=kind.timeout_seconds)
    heartbeat = _Heartbeat(ctx)
    heartbeat.start()
    status: str
    status, error, result = JobRun.Status.SUCCEEDED, "", None
    started = time.monotonic()
    try:
        result = kind.resolve_handler()(ctx)
        if ctx.canceled:
            status, error = ctx.cancel_status, ctx.cancel_reason
    except (JobCanceled, SoftTimeLimitExceeded) as exc:
        status = ctx.cancel_status if ctx.canceled else JobRun.Status.FAILED
        error = ctx.cancel_reason or f"timed out: {exc}"
    except JobFailed as exc:
        status, error = (
            (ctx.cancel_status, ctx.cancel_reason)
            if ctx.canceled
            else (
                JobRun.Status.FAILED,
                str(exc),
            )
        )
    except Exception as exc:  # noqa: BLE001 - any failure ends the run with a readable error
        if ctx.canceled:
            status, error = ctx.cancel_status, ctx.cancel_reason
        else:
            logger.exception("job %s (%s) crashed", job.pk, job.kind)
            status, error = JobRun.Status.FAILED, f"internal error ({type(exc).__name__})"
    finally:
        heartbeat.stopped.set()
        heartbeat.join(timeout=5)
    error = ctx.log.redact(error)
    duration = round(time.monotonic() - started, 3)
    if status == JobRun.Status.SUCCEEDED:
        ctx.log.system(f"job succeeded in {duration} s")
    else:
        ctx.log.system(f"job {status}: {error}")
        try:
            kind.fail_subject(job, status, error)
        except Exception:  # noqa: BLE001
            logger.exception("job %s: recording the failure on its subject failed", job.pk)
    ctx.log.flush(final=True)
    summary: dict[str, Any] = dict(result or {})
    summary.setdefault("duration_seconds", duration)
    summary.setdefault("log_chunks", ctx.log.lines_written)
    # job_finish counts the run (finished total, duration), as every other way a run ends does.
    job_finish(job=job, status=status, error=error, result=summary)
    return status

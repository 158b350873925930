"""Running one claimed job: its context, heartbeat, deadline, cancellation and outcome.

The handler gets a `JobContext`: the run, its `LogWriter`, and a cancel signal. A heartbeat
thread marks the run alive every JOB_HEARTBEAT_SECONDS, flushes quiet logs, and trips the
cancel signal when an operator cancels the run or its time budget is spent; handlers register
`on_cancel` callbacks (close the SSH channel, stop the remote process group) so a blocked read
returns at once. Time limits are ours rather than Celery's because SSH jobs run on a thread
pool, where Celery's own limits do not apply.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import close_old_connections

from apps.jobs import registry
from apps.jobs.logs import LogWriter
from apps.jobs.models import JobRun
from apps.jobs.services import job_claim, job_finish, job_heartbeat

logger = logging.getLogger(__name__)


class JobFailed(Exception):
    """An expected failure with a message for operators (no traceback, no secrets)."""


class JobCanceled(Exception):
    """The run was asked to stop (or ran out of time) and stopped."""


class JobContext:
    """What a handler works with."""

    def __init__(self, job: JobRun, *, timeout_seconds: int) -> None:
        self.job = job
        self.log = LogWriter(job)
        self.timeout_seconds = timeout_seconds
        self.deadline = time.monotonic() + timeout_seconds
        self.cancel_event = threading.Event()
        self.cancel_reason = ""
        self.cancel_status = JobRun.Status.CANCELED
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def on_cancel(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run `callback` (once) if the run is canceled; returns a function that unregisters it."""
        with self._lock:
            self._callbacks.append(callback)
            fire_now = self.cancel_event.is_set()
        if fire_now:
            _safe(callback)

        def remove() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return remove

    def cancel(self, reason: str, *, status: str = JobRun.Status.CANCELED) -> None:
        with self._lock:
            if self.cancel_event.is_set():
                return
            self.cancel_reason, self.cancel_status = reason, status
            self.cancel_event.set()
            callbacks = list(self._callbacks)
        self.log.system(f"stopping: {reason}")
        for callback in callbacks:
            _safe(callback)

    @property
    def canceled(self) -> bool:
        return self.cancel_event.is_set()

    def check(self) -> None:
        """Raise `JobCanceled` if the run should stop (call between steps)."""
        if self.cancel_event.is_set():
            raise JobCanceled(self.cancel_reason)

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


def _safe(callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception:  # noqa: BLE001 - a failing clean-up must not hide the outcome
        logger.warning("job cancel callback failed", exc_info=True)


class _Heartbeat(threading.Thread):
    def __init__(self, ctx: JobContext) -> None:
        super().__init__(name=f"job-heartbeat-{ctx.job.pk}", daemon=True)
        self.ctx = ctx
        self.stopped = threading.Event()

    def run(self) -> None:
        interval = float(settings.JOB_HEARTBEAT_SECONDS)
        try:
            while not self.stopped.wait(interval):
                try:
                    if job_heartbeat(job=self.ctx.job):
                        self.ctx.cancel("canceled by request")
                    if self.ctx.remaining() <= 0:
                        self.ctx.cancel(
                            f"timed out after {self.ctx.timeout_seconds} s",
                            status=JobRun.Status.FAILED,
                        )
                    self.ctx.log.flush_if_due()
                except Exception:  # noqa: BLE001 - keep beating through a database blip
                    logger.warning("job heartbeat failed", exc_info=True)
                    close_old_connections()
        finally:
            close_old_connections()


def job_execute(*, job_id: str, task_id: str = "", worker: str = "") -> str:
    """Claim and run one job; returns its final status ("skipped" if it was not claimable)."""
    job = job_claim(job_id=job_id, task_id=task_id, worker=worker)
    if job is None:
        return "skipped"
    try:
        kind = registry.get(job.kind)
    except LookupError:
        job_finish(job=job, status=JobRun.Status.FAILED, error=f"unknown job kind {job.kind!r}")
        return JobRun.Status.FAILED
    ctx = JobContext(job, timeout_seconds=kind.timeout_seconds)
    heartbeat = _Heartbeat(ctx)
    heartbeat.start()
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
    job_finish(job=job, status=status, error=error, result=summary)
    return status

"""What a job handler works with: its `JobContext` (the run, its log, the cancel signal and
time budget) and the two exceptions that end a run with a readable outcome. Kept apart from
the runner so the registry and the handlers can name these types without importing it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from apps.jobs.logs import LogWriter
from apps.jobs.models import JobRun

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
        self.cancel_status: str = JobRun.Status.CANCELED
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

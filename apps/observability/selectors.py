"""The state of the job queues, computed once for the metrics, `readyz` and the console.

`queue_overview()` is the only place these figures are put together: the scrape-time collector
exports it, `readyz` judges it, the console's dashboard shows it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from apps.jobs import broker, registry, selectors
from apps.jobs.models import JobRun
from apps.webhooks import selectors as webhook_selectors

_WAITING = (JobRun.Status.QUEUED, JobRun.Status.RETRYING)


@dataclass
class QueueState:
    """One queue: runs waiting and running in PostgreSQL, messages in the broker, the workers
    consuming it (None: the broker cannot tell, e.g. the embedded folder broker)."""

    name: str
    waiting: int = 0
    running: int = 0
    oldest_waiting_age_seconds: float = 0.0
    broker_length: int | None = None
    consumers: int | None = None

    @property
    def unconsumed(self) -> bool:
        """Work is waiting and no worker is known to consume the queue."""
        return self.consumers == 0 and (self.waiting > 0 or bool(self.broker_length))


@dataclass
class Overview:
    queues: list[QueueState] = field(default_factory=list)
    # (queue, kind, status, runs), as `selectors.job_run_counts` gives them.
    runs: list[tuple[str, str, str, int]] = field(default_factory=list)


def queue_overview(*, now: datetime | None = None) -> Overview:
    """Every queue's state: two queries and two broker round trips."""
    now = now or timezone.now()
    runs = selectors.job_run_counts()
    oldest = selectors.oldest_waiting_by_queue()
    consumers = broker.queue_consumers()
    # The two queries are separate statements: a run on a queue first seen between them
    # shows in `oldest` only. Every source adds its queues, so no lookup can miss.
    names = (
        set(registry.queues()) | {queue for queue, *_ in runs} | set(consumers or {}) | set(oldest)
    )
    ordered = sorted(names)
    lengths = broker.queue_lengths(ordered)
    states = {
        name: QueueState(
            name,
            broker_length=None if lengths is None else lengths.get(name, 0),
            consumers=None if consumers is None else consumers.get(name, 0),
        )
        for name in ordered
    }
    for queue, _kind, status, n in runs:
        if status in _WAITING:
            states[queue].waiting += n
        elif status == JobRun.Status.RUNNING:
            states[queue].running += n
    for queue, queued_at in oldest.items():
        states[queue].oldest_waiting_age_seconds = max(0.0, (now - queued_at).total_seconds())
    return Overview(queues=[states[name] for name in ordered], runs=runs)


# readyz is probed by every load balancer and kubelet, unauthenticated: its queue verdict is
# computed at most once per this many seconds per process, from cheap queries only.
QUEUES_CHECK_TTL_SECONDS = 20.0
_verdict: tuple[float, str] | None = None
_verdict_lock = threading.Lock()


def queues_check() -> str:
    """`readyz`'s verdict on the queues: "ok", or the queues with waiting work and no worker
    consuming them ("no consumer: ssh"). Cached per process; while one request refreshes it,
    the others get the previous verdict instead of queueing behind the database."""
    global _verdict
    cached = _verdict
    if cached is not None and time.monotonic() - cached[0] < QUEUES_CHECK_TTL_SECONDS:
        return cached[1]
    if not _verdict_lock.acquire(blocking=cached is None):
        return cached[1] if cached else "ok"
    try:
        verdict = _queues_verdict()
        _verdict = (time.monotonic(), verdict)
        return verdict
    finally:
        _verdict_lock.release()


def queues_check_forget() -> None:
    """Drop the cached verdict (tests, and a process that knows the queues changed)."""
    global _verdict
    _verdict = None


def _queues_verdict() -> str:
    consumers = broker.queue_consumers()
    if consumers is None:  # the broker cannot tell who consumes what: nothing to judge
        return "ok"
    idle = sorted(
        name for name in set(registry.queues()) | set(consumers) if not consumers.get(name)
    )
    if not idle:
        return "ok"
    lengths = broker.queue_lengths(idle) or {}
    stuck = selectors.queues_with_waiting_runs(idle) | {q for q in idle if lengths.get(q)}
    if registry.QUEUE_WEBHOOKS in idle and webhook_selectors.webhook_deliveries_due_exist():
        # Deliveries are not job runs: their waiting work is a due delivery, whether or not its
        # message is still in the broker.
        stuck.add(registry.QUEUE_WEBHOOKS)
    return f"no consumer: {', '.join(sorted(stuck))}" if stuck else "ok"

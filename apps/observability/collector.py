"""The gauges read at scrape time from PostgreSQL and Redis, served by the web role only.

Beside the multiprocess collector (the per-process samples). Workers do not serve these: each
web pod computes the same installation-wide figures, so Prometheus rules aggregate them with
`max`, never `sum`. One scrape costs two queries for the queues (apps.observability.selectors),
two for the schedules (last successes, first runs), one for their intervals, and two Redis
round trips.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from apps.audit.services import audit_last_verification
from apps.core.version import version_info
from apps.jobs import selectors as job_selectors
from apps.observability import selectors
from apps.observability.apps import schedule_names

logger = logging.getLogger(__name__)

_PERIOD_SECONDS = {"days": 86400, "hours": 3600, "minutes": 60, "seconds": 1, "microseconds": 1e-6}


def schedule_intervals() -> dict[str, float]:
    """Seconds between runs of each enabled interval schedule (crontab ones have no single
    interval and are left out)."""
    from django_celery_beat.models import PeriodicTask

    rows = PeriodicTask.objects.filter(enabled=True, interval__isnull=False).values_list(
        "name", "interval__every", "interval__period"
    )
    return {name: every * _PERIOD_SECONDS.get(period, 1) for name, every, period in rows}


def _timestamp(value: datetime) -> float:
    return value.timestamp()


class DatabaseCollector(Collector):
    """Jobs, queues, the broker, schedules and the build, as of this scrape."""

    def collect(self) -> Iterator[Any]:
        info = version_info()
        build = GaugeMetricFamily(
            "autoglue_build_info",
            "Always 1; the labels name the build.",
            labels=["version", "commit"],
        )
        build.add_metric([str(info.get("version", "")), str(info.get("commit", ""))], 1)
        yield build
        up = GaugeMetricFamily(
            "autoglue_scrape_database_up",
            "1 when this scrape could read PostgreSQL (the job and schedule gauges are missing "
            "when 0).",
        )
        try:
            families = list(self._families())
        except Exception as exc:  # noqa: BLE001 - a scrape never fails for a dependency
            logger.warning("metrics collector failed", extra={"error": type(exc).__name__})
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self) -> Iterator[Any]:
        now = timezone.now()
        overview = selectors.queue_overview(now=now)
        jobs = GaugeMetricFamily(
            "autoglue_jobs",
            "Job runs recorded in PostgreSQL, by queue, kind and status.",
            labels=["queue", "kind", "status"],
        )
        for queue, kind, status, n in overview.runs:
            jobs.add_metric([queue, kind, status], n)
        yield jobs
        oldest = GaugeMetricFamily(
            "autoglue_job_oldest_queued_age_seconds",
            "Age of the oldest run waiting for a worker (queued or retrying), 0 when none.",
            labels=["queue"],
        )
        length = GaugeMetricFamily(
            "autoglue_broker_queue_length",
            "Messages waiting in the broker (Redis), per queue.",
            labels=["queue"],
        )
        consumers = GaugeMetricFamily(
            "autoglue_queue_consumers",
            "Workers that said in the last 35 s that they consume the queue.",
            labels=["queue"],
        )
        for state in overview.queues:
            oldest.add_metric([state.name], state.oldest_waiting_age_seconds)
            if state.broker_length is not None:
                length.add_metric([state.name], state.broker_length)
            if state.consumers is not None:
                consumers.add_metric([state.name], state.consumers)
        yield oldest
        yield length
        yield consumers
        yield from _schedule_families()
        yield from _audit_families()


def _schedule_families() -> Iterator[Any]:
    """Each schedule's last success, first run and interval, for the staleness alerts."""
    success = GaugeMetricFamily(
        "autoglue_schedule_last_success_timestamp_seconds",
        "When each periodic schedule last finished successfully (Unix time).",
        labels=["schedule"],
    )
    # Label values only from the schedules the code knows: an admin may add beat rows of
    # any name, and none of them may become a series.
    known = schedule_names()
    for name, at in sorted(job_selectors.schedule_successes().items()):
        if name in known:
            success.add_metric([name], _timestamp(at))
    yield success
    first = GaugeMetricFamily(
        "autoglue_schedule_first_run_timestamp_seconds",
        "When each periodic schedule first ran to an end here, whatever the outcome (Unix "
        "time); with no last success, how long it has run without ever succeeding.",
        labels=["schedule"],
    )
    for name, at in sorted(job_selectors.schedule_first_runs().items()):
        if name in known:
            first.add_metric([name], _timestamp(at))
    yield first
    interval = GaugeMetricFamily(
        "autoglue_schedule_interval_seconds",
        "Seconds between runs of each enabled interval schedule.",
        labels=["schedule"],
    )
    for name, seconds in sorted(schedule_intervals().items()):
        if name in known:
            interval.add_metric([name], seconds)
    yield interval


def _audit_families() -> Iterator[Any]:
    last = audit_last_verification()
    if last is None:
        return
    broken = GaugeMetricFamily(
        "autoglue_audit_chains_broken",
        "Audit chains the newest full verification found broken (0: every chain verified).",
    )
    broken.add_metric([], last.broken_chains)
    yield broken
    checked = GaugeMetricFamily(
        "autoglue_audit_last_verification_timestamp_seconds",
        "When every audit chain was last verified (Unix time).",
    )
    checked.add_metric([], _timestamp(last.checked_at))
    yield checked

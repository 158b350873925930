"""Reading job logs by subject, after a cursor (the paged routes and the live stream share it)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Min, QuerySet
from django.utils import timezone

from apps.jobs.models import JobLog, JobRun, ScheduleFirstRun, ScheduleSuccess


@dataclass(frozen=True)
class LogScope:
    """The lines one route may show: one subject of one organization. `is_done` says whether
    the subject's job has ended (the route's own rule, e.g. a server is ready or failed).
    With `job_id` (the console's viewer of one run) only that run's lines are shown, and the
    subject fields only name the wake-up channel. `still_allowed` (a live stream's) says whether
    the viewer's credential and role still allow reading these lines; the stream asks it again
    while it runs and ends when it no longer holds."""

    subject_type: str
    subject_id: uuid.UUID | None
    organization_id: uuid.UUID | None
    is_done: Callable[[], bool]
    job_id: uuid.UUID | None = None
    still_allowed: Callable[[], bool] | None = None


def log_item(row: JobLog) -> dict[str, Any]:
    return {
        "id": row.pk,
        "stream": row.stream,
        "chunk": row.chunk,
        "created_at": row.created_at.isoformat().replace("+00:00", "Z"),
    }


def job_logs_page(*, scope: LogScope, after: int, limit: int) -> dict[str, Any]:
    """`{items, next_cursor, done}`: `done` when the job has ended and this page holds the last
    lines. The end is read *before* the lines, so a job that ends (and flushes) between the two
    reads makes this page "not done" rather than losing its last lines."""
    if scope.job_id is not None:
        return _job_logs_page(scope=scope, after=after, limit=limit)
    # The subject's own status moves to final a moment before its job's last lines are
    # flushed; the job row ends only after them, so both must have ended.
    finished = scope.is_done() and not (
        JobRun.objects.filter(
            subject_type=scope.subject_type,
            subject_id=scope.subject_id,
            status__in=JobRun.ACTIVE_STATUSES,
        ).exists()
    )
    rows = list(
        JobLog.objects.filter(
            subject_type=scope.subject_type,
            subject_id=scope.subject_id,
            organization_id=scope.organization_id,
            id__gt=after,
        ).order_by("id")[:limit]
    )
    items = [log_item(row) for row in rows]
    return {
        "items": items,
        "next_cursor": items[-1]["id"] if items else after,
        "done": finished and len(items) < limit,
    }


def _job_logs_page(*, scope: LogScope, after: int, limit: int) -> dict[str, Any]:
    """One run's lines; done once the run has ended (its last lines are flushed before)."""
    finished = scope.is_done()
    rows = list(JobLog.objects.filter(job_id=scope.job_id, id__gt=after).order_by("id")[:limit])
    items = [log_item(row) for row in rows]
    return {
        "items": items,
        "next_cursor": items[-1]["id"] if items else after,
        "done": finished and len(items) < limit,
    }


def job_run_counts() -> list[tuple[str, str, str, int]]:
    """`(queue, kind, status, runs)` over every run recorded, one query (the metrics'
    `autoglue_jobs`, the console's queue card and `readyz` all read it)."""
    rows = (
        JobRun.objects.order_by()
        .values_list("queue", "kind", "status")
        .annotate(n=Count("pk"))
        .values_list("queue", "kind", "status", "n")
    )
    return [(queue, kind, status, n) for queue, kind, status, n in rows]


def _due(runs: QuerySet[JobRun]) -> QuerySet[JobRun]:
    """Leave out runs delayed to a time still to come (their message carries an ETA)."""
    return runs.exclude(sent_at__gt=timezone.now())


def oldest_waiting_by_queue() -> dict[str, datetime]:
    """When the oldest run still waiting for a worker (queued or retrying) was queued, per
    queue with any. A run delayed to a later time (`run_at`, sent_at in the future) is not
    waiting for a worker yet and is left out."""
    rows = (
        _due(JobRun.objects.filter(status__in=[JobRun.Status.QUEUED, JobRun.Status.RETRYING]))
        .order_by()
        .values_list("queue")
        .annotate(oldest=Min("queued_at"))
    )
    return dict(rows)


def queues_with_waiting_runs(queues: list[str], *, timeout_ms: int = 500) -> set[str]:
    """Which of `queues` hold a run waiting for a worker: one indexed EXISTS per queue, each
    cut off after `timeout_ms` (readiness must stay quick on a slow database; a timeout raises
    and the caller says "unavailable")."""
    waiting = [JobRun.Status.QUEUED, JobRun.Status.RETRYING]
    found: set[str] = set()
    with transaction.atomic(), connection.cursor() as cursor:
        # SET LOCAL: the limit ends with this transaction (or savepoint's outer transaction,
        # so it is put back explicitly below).
        cursor.execute("SELECT current_setting('statement_timeout')")
        previous = cursor.fetchone()[0]
        cursor.execute("SELECT set_config('statement_timeout', %s, true)", [str(timeout_ms)])
        try:
            for queue in queues:
                if _due(JobRun.objects.filter(queue=queue, status__in=waiting)).exists():
                    found.add(queue)
        finally:
            cursor.execute("SELECT set_config('statement_timeout', %s, true)", [previous])
    return found


def schedule_successes() -> dict[str, datetime]:
    """When each periodic schedule last finished successfully."""
    return dict(ScheduleSuccess.objects.values_list("name", "succeeded_at"))


def schedule_first_runs() -> dict[str, datetime]:
    """When each periodic schedule first ran to an end (any outcome)."""
    return dict(ScheduleFirstRun.objects.values_list("name", "ran_at"))


def job_transcript_lines(*, job: JobRun) -> Iterator[str]:
    """The run's whole log as plain text, one stored chunk at a time (each line ending in a
    newline): its time (UTC), its offset from the run's start and its stream. Rows are read in
    batches and nothing is held beyond one batch, so a log of any size streams in constant
    memory. The lines were redacted when they were written (apps.jobs.logs), so nothing here
    sees a secret."""
    start = job.started_at or job.queued_at
    for row in JobLog.objects.filter(job_id=job.pk).order_by("id").iterator(chunk_size=500):
        stamp = row.created_at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        offset = max((row.created_at - start).total_seconds(), 0.0) if start else 0.0
        yield "".join(
            f"{stamp} +{offset:.1f}s [{row.stream}] {text}\n"
            for text in row.chunk.rstrip("\n").split("\n")
        )

"""The metrics each process records as things happen (docs/observability.md lists them all).

Recorded where the event is (a request, a job's end, an SSH connection, a refusal) and added
up across processes at scrape time (apps.core.metrics_process). Gauges read from PostgreSQL
and Redis at scrape time (job counts, queue ages, broker lengths, schedules) are not here:
they are the web's collector (apps.observability.collector).

Labels are bounded by construction: route patterns, status classes, methods, queues, job
kinds, outcomes, operations. Never an organization, cluster, user, id, path or error text
(tests/test_metrics_labels.py checks every family).
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, values

from apps.core import metrics_process

_shared_value: Any = None


def _value(*args: Any, **kwargs: Any) -> Any:
    """Where a sample lives, decided when it is first used rather than at import: Celery
    imports the tasks (and these metrics) before its start hook has set the sample folder, and
    labelled samples are only created in the pool's processes, after it. In a folder (files
    named by the process's stable id, not its pid) when metrics are on; in memory otherwise."""
    global _shared_value
    if os.environ.get(metrics_process.DIR_VARIABLE) and metrics_process.enabled():
        if _shared_value is None:
            _shared_value = values.MultiProcessValue(metrics_process.process_id)
        return _shared_value(*args, **kwargs)
    return values.MutexValue(*args, **kwargs)


values.ValueClass = _value  # type: ignore[assignment,misc]

# Methods outside this set are counted as "other": a client may send any token as a method.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

http_request_duration = Histogram(
    "autoglue_http_request_duration_seconds",
    "Time from a request entering the middleware stack to its response, by route pattern.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
http_requests_in_flight = Gauge(
    "autoglue_http_requests_in_flight",
    "Requests being handled right now (all web workers).",
    multiprocess_mode="livesum",
)
job_duration = Histogram(
    "autoglue_job_duration_seconds",
    "Run time of finished job runs, by kind and outcome.",
    ["kind", "outcome"],
    buckets=(0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0),
)
jobs_finished = Counter(
    "autoglue_jobs_finished",
    "Job runs that ended, by kind and outcome (succeeded, failed, canceled).",
    ["kind", "outcome"],
)
aws_calls = Counter(
    "autoglue_aws_calls",
    "Calls to AWS APIs (Route 53, S3), by service, operation and outcome (ok, error, throttled).",
    ["service", "operation", "outcome"],
)
aws_throttles = Counter(
    "autoglue_aws_throttles",
    "AWS answers that refused a call for its rate (Throttling, SlowDown, ...), retried ones "
    "included, by service and operation.",
    ["service", "operation"],
)
ssh_connections = Counter(
    "autoglue_ssh_connections",
    "SSH connections to servers, by outcome (ok, host_key_mismatch, auth_failed, "
    "unreachable, error).",
    ["outcome"],
)
rate_limit_refusals = Counter(
    "autoglue_rate_limit_refusals",
    "Requests answered 429, by the limit that refused them.",
    ["limit"],
)
failed_credentials = Counter(
    "autoglue_failed_credentials",
    "Requests whose credentials were refused (answered 401), by the kind of credential.",
    ["credential"],
)
db_pool_timeouts = Counter(
    "autoglue_db_pool_timeouts",
    "Requests answered 503 because every pooled PostgreSQL connection stayed busy for "
    "DATABASE_POOL_TIMEOUT (an outage is not counted here).",
)
log_streams_open = Gauge(
    "autoglue_log_streams_open",
    "Live job log streams (Server-Sent Events) open right now.",
    multiprocess_mode="livesum",
)


def status_class(status: int) -> str:
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


def method_label(method: str) -> str:
    return method if method in HTTP_METHODS else "other"


# Error codes AWS answers for "slow down" (Route 53: Throttling, PriorRequestNotComplete;
# S3: SlowDown).
AWS_THROTTLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "PriorRequestNotComplete",
        "SlowDown",
        "RequestThrottled",
    }
)


def _aws_error_code(parsed: Any) -> str:
    return str(((parsed or {}).get("Error") or {}).get("Code") or "") if parsed else ""


def instrument_aws(client: Any, service: str) -> Any:
    """Count a boto3 client's calls (final outcome) and throttled attempts. The operation is
    the API's name (ChangeResourceRecordSets), never a zone, bucket or key."""

    def after_call(
        http_response: Any = None, parsed: Any = None, model: Any = None, **_: Any
    ) -> None:
        status = getattr(http_response, "status_code", 0) or 0
        code = _aws_error_code(parsed)
        outcome = "ok" if status < 300 else "throttled" if code in AWS_THROTTLE_CODES else "error"
        aws_calls.labels(service, getattr(model, "name", "unknown"), outcome).inc()

    def after_call_error(model: Any = None, **_: Any) -> None:
        aws_calls.labels(service, getattr(model, "name", "unknown"), "error").inc()

    def needs_retry(response: Any = None, operation: Any = None, **_: Any) -> None:
        parsed = response[1] if isinstance(response, tuple) and len(response) > 1 else None
        if _aws_error_code(parsed) in AWS_THROTTLE_CODES:
            aws_throttles.labels(service, getattr(operation, "name", "unknown")).inc()

    events = client.meta.events
    events.register("after-call", after_call)
    events.register("after-call-error", after_call_error)
    events.register_first("needs-retry", needs_retry)
    return client

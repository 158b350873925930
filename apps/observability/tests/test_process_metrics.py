"""Metrics recorded where things happen: AWS calls (against moto, and a stand-in that throttles
the way Route 53 does) and the job runner's outcomes."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import REGISTRY

from apps.dns.clients import Route53Client
from apps.jobs import registry, runner, services
from apps.maintenance.storage import s3_client

pytestmark = pytest.mark.django_db

THROTTLED = (
    b'<?xml version="1.0"?>\n<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
    b"<Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
    b"<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
)


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class _ThrottlingRoute53(BaseHTTPRequestHandler):
    """Answers every Route 53 call as an overloaded account does: 400 Throttling."""

    received = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).received += 1
        self.send_response(400)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(THROTTLED)))
        self.end_headers()
        self.wfile.write(THROTTLED)

    def log_message(self, format, *args):  # noqa: A002
        pass


@pytest.fixture
def throttling_route53(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ThrottlingRoute53)
    _ThrottlingRoute53.received = 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_address[1]}")
    yield
    server.shutdown()
    server.server_close()


def test_s3_calls_are_counted_by_operation_and_outcome(moto_server, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "CANARY-s3-secret")
    before = _sample(
        "autoglue_aws_calls_total", service="s3", operation="ListBuckets", outcome="ok"
    )
    s3_client().list_buckets()
    after = _sample("autoglue_aws_calls_total", service="s3", operation="ListBuckets", outcome="ok")
    assert after == before + 1


def test_route53_throttling_counts_every_refused_attempt_and_one_throttled_call(
    throttling_route53, settings
):
    settings.DNS_ROUTE53_MAX_ATTEMPTS = 2
    labels = {"service": "route53", "operation": "ListHostedZonesByName"}
    calls = _sample("autoglue_aws_calls_total", outcome="throttled", **labels)
    throttles = _sample("autoglue_aws_throttles_total", **labels)
    client = Route53Client(access_key_id="AKIDEXAMPLE", secret_access_key="CANARY-secret")

    with pytest.raises(Exception):  # noqa: B017, PT011 - the client's own error type varies
        client.find_zone("example.com")

    assert _sample("autoglue_aws_calls_total", outcome="throttled", **labels) == calls + 1
    # Every refused attempt (the retries included), one call that ended throttled.
    assert _ThrottlingRoute53.received >= 2
    assert (
        _sample("autoglue_aws_throttles_total", **labels) == throttles + _ThrottlingRoute53.received
    )


# Transactional: the runner's heartbeat thread reads the run on a connection of its own.
@pytest.mark.django_db(transaction=True)
def test_a_finished_job_is_counted_with_its_duration(settings):
    settings.JOBS_PUBLISH = False
    labels = {"kind": "refresh_token_purge", "outcome": "succeeded"}
    finished = _sample("autoglue_jobs_finished_total", **labels)
    observed = _sample("autoglue_job_duration_seconds_count", **labels)
    job = services.job_enqueue(kind="refresh_token_purge")

    assert runner.job_execute(job_id=str(job.pk)) == "succeeded"

    assert _sample("autoglue_jobs_finished_total", **labels) == finished + 1
    assert _sample("autoglue_job_duration_seconds_count", **labels) == observed + 1


def test_a_run_the_reaper_gives_up_on_is_counted_as_failed(settings):
    from datetime import timedelta

    from django.utils import timezone

    from apps.jobs.models import JobRun

    settings.JOBS_PUBLISH = False
    labels = {"kind": "backup", "outcome": "failed"}
    finished = _sample("autoglue_jobs_finished_total", **labels)
    observed = _sample("autoglue_job_duration_seconds_count", **labels)
    job = services.job_claim(job_id=services.job_enqueue(kind="backup").pk)
    # Its worker died long ago on its last attempt: the reaper ends it, no runner ever will.
    long_ago = timezone.now() - timedelta(hours=1)
    JobRun.objects.filter(pk=job.pk).update(
        heartbeat_at=long_ago, started_at=long_ago, attempts=job.max_attempts
    )

    services.job_reap()

    assert JobRun.objects.get(pk=job.pk).status == JobRun.Status.FAILED
    assert _sample("autoglue_jobs_finished_total", **labels) == finished + 1
    assert _sample("autoglue_job_duration_seconds_count", **labels) == observed + 1


def test_every_kind_and_outcome_starts_at_zero_in_a_worker_process():
    registry.prime_counters()  # what a worker process does as it starts (autoglue/celery.py)

    labels = {"kind": "dns_purge", "outcome": "canceled"}
    assert REGISTRY.get_sample_value("autoglue_jobs_finished_total", labels) is not None
    assert REGISTRY.get_sample_value("autoglue_job_duration_seconds_count", labels) is not None

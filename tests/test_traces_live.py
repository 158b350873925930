"""Traces with every real part: the web role as deployed (gunicorn with its config file, uvicorn
workers), a Celery `ssh` worker on the threads pool, loopback sshds for the bastion and the node,
and an OTLP receiver on loopback that decodes what the processes export."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from apps.accounts.services import api_key_create_for_user
from apps.clusters.models import ClusterRun
from apps.jobs import services as jobs
from apps.jobs.models import JobRun
from apps.jobs.tests.support import cluster_ready_for_actions, fake_docker
from tests import live
from tests.otlp import OTLPReceiver, ReceivedSpan, ancestors

SERVER, CLIENT, CONSUMER = 2, 3, 5  # opentelemetry.proto.trace.v1.Span.SpanKind


@pytest.fixture
def receiver():
    started = OTLPReceiver().start()
    yield started
    started.stop()


def _traced_env(receiver: OTLPReceiver, tmp_path) -> dict[str, str]:
    return live.process_env(
        CLUSTER_ACTION_DOCKER=str(fake_docker(tmp_path)),
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,
        # Export within a fifth of a second rather than five.
        OTEL_BSP_SCHEDULE_DELAY="200",
        GUNICORN_CMD_ARGS="--config autoglue/gunicorn_conf.py",
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
    )


def _post_run(url: str, org, member, cluster, action) -> str:  # type: ignore[no-untyped-def]
    key = api_key_create_for_user(user=member).plain
    created = requests.post(
        f"{url}/api/v1/clusters/{cluster.pk}/actions/{action.pk}/runs",
        headers={"X-API-KEY": key, "X-Org-ID": str(org.pk)},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    return created.json()["id"]


def _wait_for_run(run_id: str) -> None:
    live.wait_until(
        lambda: ClusterRun.objects.get(pk=run_id).status in ("succeeded", "failed"),
        90,
        "the run to end",
    )
    assert ClusterRun.objects.get(pk=run_id).status == "succeeded"


def _job_and_post(spans: list[ReceivedSpan]) -> ReceivedSpan | None:
    """The job's span, once it and the request's server span have both arrived (the job's
    ends after its every step, so those are in by then too)."""
    job = next((s for s in spans if s.name == "job cluster_action"), None)
    if job is None:
        return None
    web = [s for s in spans if s.trace_id == job.trace_id and s.kind == SERVER]
    return job if web else None


def _post_span(spans: list[ReceivedSpan], run_trace: str) -> ReceivedSpan:
    posts = [
        s
        for s in spans
        if s.trace_id == run_trace and s.kind == SERVER and s.service == "autoglue-web"
    ]
    assert len(posts) == 1, [(s.name, s.service) for s in posts]
    return posts[0]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_cluster_runs_trace_goes_from_the_post_to_each_ssh_step_of_its_job(
    org, member, sshd_factory, tmp_path, receiver
):
    cluster, action, _ = cluster_ready_for_actions(
        org, bastion_sshd=sshd_factory(home=True), node_sshd=sshd_factory(home=True)
    )
    env = _traced_env(receiver, tmp_path)
    web, url = live.start_web(tmp_path, env, workers=1)
    worker = live.start_worker(tmp_path, env, name="ssh")
    try:
        run_id = _post_run(url, org, member, cluster, action)
        _wait_for_run(run_id)
        job = receiver.wait_for(_job_and_post, 30)
    finally:
        worker.stop()
        web.stop()

    spans = receiver.received()
    trace = [s for s in spans if s.trace_id == job.trace_id]
    post = _post_span(spans, job.trace_id)
    # Named by the route pattern, never by the ids in the path.
    assert post.name.startswith("POST ") and "runs" in post.name
    assert str(cluster.pk) not in post.name and str(action.pk) not in post.name
    # The job, run by the worker, continues the request's trace...
    assert job.service == "autoglue-worker" and job.kind == CONSUMER
    assert post in ancestors(job, trace)
    assert job.attributes["autoglue.job.status"] == "succeeded"
    # ...and is linked to the Celery delivery that carried it.
    delivery = {s.span_id: s for s in trace}[job.links[0][1]]
    assert delivery.name == "run/jobs.run" and delivery.service == "autoglue-worker"
    # Every SSH step is a span under the job: the chain runs from the POST to each command.
    steps = {"ssh.connect", "ssh.handshake", "ssh.host_key", "ssh.auth", "ssh.upload"}
    under_job = [s for s in trace if job in ancestors(s, trace)]
    assert steps <= {s.name for s in under_job}
    commands = [s for s in under_job if s.name == "ssh.command"]
    uploads = [s for s in under_job if s.name == "ssh.upload"]
    # Each file written to the bastion is a command with an upload; then `make ping-servers`
    # and `make <action>`.
    assert len(uploads) >= 3 and len(commands) == len(uploads) + 2
    assert all(ancestors(upload, trace)[0] in commands for upload in uploads)
    for command in commands:
        chain = ancestors(command, trace)
        assert chain[0] is job and chain[-1] is post
        assert command.attributes["ssh.exit_status"] == 0
    host_key = next(s for s in under_job if s.name == "ssh.host_key")
    assert host_key.attributes["ssh.host_key.algorithm"] == "ssh-ed25519"
    # The instrumentations are on: the request's SQL, its Redis calls and the publish.
    web_side = [s for s in trace if s.service == "autoglue-web"]
    assert any(s.attributes.get("db.system") == "postgresql" for s in web_side)
    assert any(s.attributes.get("db.system") == "redis" for s in web_side)
    assert any(s.name == "apply_async/jobs.run" for s in web_side)
    # Calls outside any request or job (the broker's polling, heartbeats, probes) make no
    # traces of their own.
    assert not [s.name for s in spans if s.kind == CLIENT and not s.parent_id]
    # No secret rides along: the cluster's kubeconfig canary, the key, the org in a name.
    text = json.dumps([[s.name, s.attributes] for s in spans], default=str)
    assert "CANARY" not in text and "PRIVATE KEY" not in text
    assert all(str(org.pk) not in s.name for s in spans)
    # The request's log lines carry its trace: its access log names the same trace and span.
    access = [
        json.loads(line)
        for line in web.log.read_text().splitlines()
        if line.startswith("{") and '"http_request"' in line and "/runs" in line
    ]
    assert access and access[0]["trace_id"] == post.trace_id
    assert access[0]["span_id"] in {s.span_id for s in web_side}
    assert access[0]["request_id"]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_a_run_sent_again_by_the_reaper_continues_the_request_and_its_spans_leave_at_stop(
    org, member, sshd_factory, tmp_path, receiver, settings, pool
):
    """The context travels in the run's row, not only in the Celery message: the first message
    is lost (the broker restarted empty) and the reaper, which has no trace of its own, sends
    the run again. The worker holds its spans (an export delay of ten minutes) until it is
    stopped: they must leave then, from the threads pool's process as from a prefork child."""
    cluster, action, _ = cluster_ready_for_actions(
        org, bastion_sshd=sshd_factory(home=True), node_sshd=sshd_factory(home=True)
    )
    redis_server = live.RedisServer(tmp_path)
    redis_server.start()
    env = {**_traced_env(receiver, tmp_path), "REDIS_URL": redis_server.url}
    web, url = live.start_web(tmp_path, env, workers=1)
    worker = None
    try:
        run_id = _post_run(url, org, member, cluster, action)
        job_row = JobRun.objects.get(subject_id=run_id)
        assert len(job_row.trace_parent) == 55
        redis_server.kill()  # the message goes with it
        redis_server.start()
        JobRun.objects.filter(pk=job_row.pk).update(sent_at=timezone.now() - timedelta(hours=1))
        settings.JOBS_PUBLISH = True
        with live.publishing_to(redis_server.url):
            assert jobs.job_reap()["resent"] == 1
        worker = live.start_worker(
            tmp_path,
            {**env, "OTEL_BSP_SCHEDULE_DELAY": "600000"},
            name="ssh",
            pool=pool,
            concurrency=2,
        )
        _wait_for_run(run_id)
        time.sleep(1)
        assert not any(s.service == "autoglue-worker" for s in receiver.received())
        worker.stop()
        job = receiver.wait_for(_job_and_post, 30)
    finally:
        if worker is not None:
            worker.stop()
        web.stop()
        redis_server.stop()

    spans = receiver.received()
    post = _post_span(spans, job.trace_id)
    assert job.parent_id == job_row.trace_parent.split("-")[2]
    assert post in ancestors(job, spans)
    assert any(s.name == "ssh.command" and job in ancestors(s, spans) for s in spans)
    # The delivery that carried the resent message belongs to another trace (the reaper's
    # publish had none), and the job links to it.
    delivery = next(s for s in spans if s.span_id == job.links[0][1])
    assert delivery.name == "run/jobs.run" and delivery.trace_id != job.trace_id


SETUP_PROBE = """
import json, sys, threading
from opentelemetry import trace
from autoglue import gunicorn_conf, tracing
gunicorn_conf.post_fork(None, None)
after_post_fork = tracing.enabled()
from django.conf import settings
from autoglue import asgi
from celery import signals
signals.worker_process_init.send(sender="probe")
signals.beat_init.send(sender=None)
print(json.dumps({
    "after_post_fork": after_post_fork,
    "enabled": tracing.enabled(),
    "provider": type(trace.get_tracer_provider()).__name__,
    "export_threads": [t.name for t in threading.enumerate() if t.name.startswith("Otel")],
    "instrumentations": sorted(
        {m.split(".")[2] for m in sys.modules if m.startswith("opentelemetry.instrumentation.")}
    ),
    "middleware": [m for m in settings.MIDDLEWARE if "opentelemetry" in m],
    "application": type(asgi.application).__module__,
    # Inside the wrapper that drops a client's trace headers: the tracing middleware.
    "inner": type(getattr(asgi.application, "application", None)).__module__,
    "traceparent": tracing.current_traceparent(),
}))
"""


# A Celery process's hooks, one signal at a time: which service each role names itself, and
# which pools set up in the worker's own process.
CELERY_PROBE = """
import json
from celery import signals
from opentelemetry import trace
from autoglue import celery, tracing
signal, pool = SIGNAL_AND_POOL
Worker = type("Worker", (), {"pool_cls": pool})
getattr(signals, signal).send(sender=Worker())
provider = trace.get_tracer_provider()
print(json.dumps({
    "enabled": tracing.enabled(),
    "service": getattr(provider, "resource", None) and provider.resource.attributes["service.name"],
}))
"""


def _probe(script: str = SETUP_PROBE, **extra: str) -> dict:
    env = {k: v for k, v in live.process_env().items() if not k.startswith("OTEL_")}
    done = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-c", script],
        env={**env, **extra},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=live.ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.django_db
def test_without_an_otlp_endpoint_no_process_sets_anything_up():
    probe = _probe()
    assert probe == {
        "after_post_fork": False,
        "enabled": False,
        # The API's stand-in: no SDK provider, no span processor thread. (redis-py imports the
        # SDK's metrics module on its own when it is installed; it sets nothing up.)
        "provider": "ProxyTracerProvider",
        "export_threads": [],
        "instrumentations": [],
        "middleware": [],
        "application": "django.core.handlers.asgi",
        "inner": "builtins",
        "traceparent": "",
    }


@pytest.mark.django_db
def test_with_an_otlp_endpoint_the_web_hooks_install_the_sdk_and_both_middlewares():
    probe = _probe(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert probe["after_post_fork"] and probe["provider"] == "TracerProvider"
    assert probe["export_threads"] == ["OtelBatchSpanRecordProcessor"]
    assert probe["middleware"] and probe["application"] == "autoglue.tracing"
    assert probe["inner"] == "opentelemetry.instrumentation.asgi"
    for name in ("django", "celery", "psycopg", "redis", "botocore"):
        assert name in probe["instrumentations"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("signal", "pool", "service"),
    [
        ("worker_process_init", "prefork", "autoglue-worker"),
        ("worker_init", "threads", "autoglue-worker"),
        ("worker_init", "prefork", None),  # its children set up after their fork
        ("beat_init", None, "autoglue-beat"),
    ],
)
def test_each_celery_role_sets_up_after_its_fork_under_its_own_service_name(signal, pool, service):
    script = CELERY_PROBE.replace("SIGNAL_AND_POOL", repr((signal, pool)))
    probe = _probe(script, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert probe == {"enabled": service is not None, "service": service}


@pytest.mark.django_db
def test_the_standard_service_name_variable_wins_over_the_roles_name():
    script = CELERY_PROBE.replace("SIGNAL_AND_POOL", repr(("beat_init", None)))
    probe = _probe(
        script,
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
        OTEL_SERVICE_NAME="autoglue-eu-1",
    )
    assert probe == {"enabled": True, "service": "autoglue-eu-1"}

"""`/metrics` on the web: off without a token, refused without the right one, and what an
operator reads there agrees with `readyz` and with the database."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from apps.jobs import broker, services
from apps.jobs.models import JobRun
from apps.maintenance.tests.factories import JobRunFactory
from apps.observability.selectors import queues_check_forget

pytestmark = pytest.mark.django_db

TOKEN = "CANARY-metrics-token-0123456789"


@pytest.fixture
def metrics_on(monkeypatch):
    monkeypatch.setenv("METRICS_TOKEN", TOKEN)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)


@pytest.fixture
def consumers():
    """The broker's consumer list, emptied before and after (workers of other tests' live
    servers are not ours to count)."""
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    client.delete(broker.CONSUMERS_KEY)
    yield
    client.delete(broker.CONSUMERS_KEY)
    client.close()


@pytest.fixture
def operator(member):
    """A signed-in console session (readyz shows it which queue lacks a worker)."""
    from django.test import Client

    session = Client()
    session.force_login(member)
    return session


def _scrape(client) -> dict:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    return {f.name: f for f in text_string_to_metric_families(response.content.decode())}


def _value(families: dict, name: str, **labels: str) -> float | None:
    for family in families.values():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def test_metrics_route_does_not_exist_without_a_token(client, monkeypatch):
    monkeypatch.delenv("METRICS_TOKEN", raising=False)
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


def test_metrics_refuse_a_missing_or_wrong_token(client, metrics_on):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401


def test_metrics_refuse_a_token_with_non_ascii_characters_with_401(client, metrics_on):
    for header in ("Bearer jalapeño", "Bearer \u00e9\u00e9", "Bearer " + "\u2603" * 40):
        assert client.get("/metrics", HTTP_AUTHORIZATION=header).status_code == 401


def test_job_gauges_count_the_runs_in_the_database(client, metrics_on, consumers):
    JobRunFactory.create_batch(3, queue="maintenance", kind="vacuum", status=JobRun.Status.QUEUED)
    JobRunFactory(queue="maintenance", kind="vacuum", status=JobRun.Status.FAILED)
    old = JobRunFactory(queue="ssh", kind="bootstrap_bastion", status=JobRun.Status.QUEUED)
    JobRun.objects.filter(pk=old.pk).update(queued_at=timezone.now() - timedelta(minutes=10))

    families = _scrape(client)

    vacuum = {"queue": "maintenance", "kind": "vacuum"}
    assert _value(families, "autoglue_jobs", status="queued", **vacuum) == 3
    assert _value(families, "autoglue_jobs", status="failed", **vacuum) == 1
    age = _value(families, "autoglue_job_oldest_queued_age_seconds", queue="ssh")
    assert 590 <= age <= 700
    assert _value(families, "autoglue_job_oldest_queued_age_seconds", queue="default") == 0
    assert _value(families, "autoglue_scrape_database_up") == 1
    assert _value(families, "autoglue_build_info") == 1


def test_a_run_delayed_to_later_is_not_counted_as_waiting_too_long(client, metrics_on, consumers):
    delayed = JobRunFactory(queue="ssh", kind="bootstrap_bastion", status=JobRun.Status.QUEUED)
    JobRun.objects.filter(pk=delayed.pk).update(
        queued_at=timezone.now() - timedelta(hours=2),
        sent_at=timezone.now() + timedelta(hours=1),
    )
    broker.consumer_beat(queues=["default", "maintenance"], hostname="worker@a")

    families = _scrape(client)

    assert _value(families, "autoglue_job_oldest_queued_age_seconds", queue="ssh") == 0
    assert client.get("/api/v1/readyz").json()["checks"]["queues"] == "ok"


def test_a_run_on_a_new_queue_between_the_scrapes_two_queries_keeps_the_database_up(
    client, metrics_on, monkeypatch
):
    from apps.jobs import selectors as job_selectors

    real = job_selectors.oldest_waiting_by_queue

    def run_arrives_first():
        # Enqueued after the counts were read, before the oldest ages are.
        JobRunFactory(queue="CANARY-new-queue", kind="vacuum", status=JobRun.Status.QUEUED)
        return real()

    monkeypatch.setattr(job_selectors, "oldest_waiting_by_queue", run_arrives_first)

    families = _scrape(client)

    assert _value(families, "autoglue_scrape_database_up") == 1


def test_probes_and_scrapes_are_not_counted_as_traffic(client, metrics_on, anon):
    for _ in range(3):
        anon.get("/api/v1/healthz")
        anon.get("/api/v1/readyz")
        _scrape(client)

    routes = {
        s.labels["route"]
        for s in _scrape(client)["autoglue_http_request_duration_seconds"].samples
        if s.name.endswith("_count")
    }
    assert not routes & {"/metrics", "/api/v1/healthz", "/api/v1/readyz"}


def test_requests_are_counted_by_route_pattern_not_path(client, metrics_on, api):
    api.get(f"/api/v1/servers/{uuid.uuid4()}")
    api.get("/api/v1/servers")
    families = _scrape(client)
    routes = {
        s.labels["route"]
        for s in families["autoglue_http_request_duration_seconds"].samples
        if s.name.endswith("_count")
    }
    assert not any(re.search(r"[0-9a-f]{8}-[0-9a-f]{4}", route) for route in routes)
    assert any("servers" in route for route in routes)


def _finish(kind: str, status: str, payload: dict | None = None) -> None:
    job = services.job_enqueue(kind=kind, payload=payload or {})
    job = services.job_claim(job_id=job.pk)
    services.job_finish(job=job, status=status, error="" if status == "succeeded" else "boom")


def _success(client, schedule: str) -> float | None:
    return _value(
        _scrape(client), "autoglue_schedule_last_success_timestamp_seconds", schedule=schedule
    )


def test_a_scheduled_run_that_succeeds_is_the_schedules_last_success(client, metrics_on, settings):
    settings.JOBS_PUBLISH = False
    before = timezone.now().timestamp()
    _finish(
        "vacuum", JobRun.Status.SUCCEEDED, {"scheduled": True, "schedule": "maintenance-vacuum"}
    )

    at = _success(client, "maintenance-vacuum")
    assert at is not None and at >= before - 1


def test_a_manual_backup_that_succeeds_clears_backup_staleness(client, metrics_on, settings):
    settings.JOBS_PUBLISH = False
    _finish("backup", JobRun.Status.SUCCEEDED, {"scheduled": False})

    assert _success(client, "maintenance-backup") is not None


def test_a_run_cannot_claim_another_schedules_freshness_through_its_payload(
    client, metrics_on, settings
):
    settings.JOBS_PUBLISH = False
    _finish("vacuum", JobRun.Status.SUCCEEDED, {"schedule": "maintenance-backup"})
    _finish("api_key_sweep", JobRun.Status.SUCCEEDED, {"schedule": "CANARY-made-up"})

    assert _success(client, "maintenance-backup") is None
    assert _success(client, "CANARY-made-up") is None
    assert _success(client, "maintenance-vacuum") is not None


def test_a_schedule_name_the_code_does_not_know_never_becomes_a_label(client, metrics_on):
    services.schedule_success_record(name="CANARY-admin-row")

    assert (
        "CANARY-admin-row"
        not in client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    )


def test_a_failed_scheduled_run_is_no_success(client, metrics_on, settings):
    settings.JOBS_PUBLISH = False
    _finish("vacuum", JobRun.Status.FAILED, {"schedule": "maintenance-vacuum"})

    assert _success(client, "maintenance-vacuum") is None


def test_a_dns_reconcile_job_that_succeeds_is_the_dns_reconcile_schedules_success(
    client, metrics_on, settings
):
    settings.JOBS_PUBLISH = False
    _finish("dns_reconcile", JobRun.Status.SUCCEEDED)

    assert _success(client, "dns-reconcile") is not None


class _Task:
    def __init__(self, name: str, periodic_task_name: str = "") -> None:
        self.name = name
        self.request = type("R", (), {"periodic_task_name": periodic_task_name})()


def test_ticks_that_only_queue_work_are_no_success_until_the_work_succeeds(client, metrics_on):
    from apps.observability.apps import _schedule_task_succeeded

    _schedule_task_succeeded(sender=_Task("dns.reconcile_tick", "dns-reconcile"), result=2)
    _schedule_task_succeeded(sender=_Task("groupsync.sync", "groupsync-sync"), result=3)
    _schedule_task_succeeded(sender=_Task("maintenance.tick", "maintenance-backup"), result=None)
    assert _success(client, "dns-reconcile") is None
    assert _success(client, "groupsync-sync") is None
    assert _success(client, "maintenance-backup") is None

    # Nothing to queue is a success of its own; so is an organization's sync.
    _schedule_task_succeeded(sender=_Task("dns.reconcile_tick", "dns-reconcile"), result=0)
    _schedule_task_succeeded(sender=_Task("groupsync.sync_organization"), result=None)
    assert _success(client, "dns-reconcile") is not None
    assert _success(client, "groupsync-sync") is not None


def test_a_beat_task_records_its_own_schedule_whatever_row_name_beat_sent(client, metrics_on):
    from apps.observability.apps import _schedule_task_succeeded

    _schedule_task_succeeded(sender=_Task("jobs.reap", "CANARY-renamed-row"), result=None)

    assert _success(client, "jobs-reap") is not None
    assert _success(client, "CANARY-renamed-row") is None


def test_readyz_names_a_queue_with_work_and_no_consumer(operator, consumers, client, metrics_on):
    JobRunFactory(queue="ssh", kind="bootstrap_bastion", status=JobRun.Status.QUEUED)
    broker.consumer_beat(queues=["default", "maintenance"], hostname="worker@a")

    body = operator.get("/api/v1/readyz").json()
    families = _scrape(client)

    assert operator.get("/api/v1/readyz").status_code == 200
    assert body["status"] == "degraded"
    assert body["checks"]["queues"] == "no consumer: ssh"
    assert _value(families, "autoglue_queue_consumers", queue="ssh") == 0
    assert _value(families, "autoglue_queue_consumers", queue="default") == 1


def test_readyz_names_the_webhooks_queue_when_a_due_delivery_has_no_worker(
    operator, consumers, org, settings
):
    from apps.orgs.tests.factories import MembershipFactory
    from apps.webhooks import services as webhook_services
    from apps.webhooks.models import WebhookDelivery

    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    webhook_services.webhook_endpoint_create(organization=org, url="https://hooks.example.com/")
    MembershipFactory(organization=org)  # member.added: a delivery, due now
    assert WebhookDelivery.objects.filter(status="pending").exists()
    broker.consumer_beat(queues=["default", "maintenance", "ssh"], hostname="worker@a")

    body = operator.get("/api/v1/readyz").json()

    assert body["status"] == "degraded"
    assert body["checks"]["queues"] == "no consumer: webhooks"

    queues_check_forget()
    broker.consumer_beat(queues=["webhooks"], hostname="webhooks@a")
    assert operator.get("/api/v1/readyz").json()["checks"]["queues"] == "ok"


def test_readyz_is_ok_once_a_worker_consumes_the_queue(anon, consumers):
    JobRunFactory(queue="ssh", kind="bootstrap_bastion", status=JobRun.Status.QUEUED)
    broker.consumer_beat(queues=["ssh"], hostname="ssh@a")

    body = anon.get("/api/v1/readyz").json()

    assert body == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "ok", "queues": "ok"},
    }


def test_anonymous_readyz_says_degraded_without_naming_the_queue(anon, consumers):
    JobRunFactory(queue="ssh", kind="bootstrap_bastion", status=JobRun.Status.QUEUED)
    broker.consumer_beat(queues=["default", "maintenance"], hostname="worker@a")

    body = anon.get("/api/v1/readyz").json()

    assert body["status"] == "degraded"
    assert body["checks"]["queues"] == "degraded"


def test_readyz_reuses_its_queue_verdict_instead_of_querying_on_every_probe(
    anon, consumers, django_assert_max_num_queries
):
    broker.consumer_beat(queues=["default", "maintenance"], hostname="worker@a")
    assert anon.get("/api/v1/readyz").json()["checks"]["queues"] == "ok"
    JobRunFactory(queue="ssh", kind="bootstrap_bastion", status=JobRun.Status.QUEUED)

    # Only the database check's SELECT 1 per probe: the verdict comes from the cache.
    with django_assert_max_num_queries(5):
        for _ in range(5):
            assert anon.get("/api/v1/readyz").json()["checks"]["queues"] == "ok"


def test_readyz_queue_check_gives_up_quickly_when_the_job_table_is_locked(anon, consumers):
    import time

    import psycopg
    from django.db import connection

    broker.consumer_beat(queues=["default", "maintenance"], hostname="worker@a")
    db = connection.settings_dict
    other = psycopg.connect(
        dbname=db["NAME"], user=db["USER"], host=db["HOST"], port=db["PORT"] or 5432
    )
    try:
        other.execute("LOCK TABLE jobs_jobrun IN ACCESS EXCLUSIVE MODE")
        started = time.monotonic()
        response = anon.get("/api/v1/readyz")
        elapsed = time.monotonic() - started
    finally:
        other.rollback()
        other.close()

    assert elapsed < 3
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"


def test_a_broken_audit_chain_shows_in_the_metrics_after_verification(client, metrics_on, org):
    from apps.audit import events
    from apps.audit.models import AuditEntry
    from apps.audit.services import audit_record, audit_verify_record
    from apps.audit.tests.support import sealed

    entries = sealed(
        [
            audit_record(event=events.RESOURCE_UPDATE, organization_id=org.pk, object_id=str(i))
            for i in range(3)
        ]
    )
    audit_verify_record()
    assert _value(_scrape(client), "autoglue_audit_chains_broken") == 0

    AuditEntry.objects.filter(pk=entries[1].pk).update(ip="10.9.9.9")
    audit_verify_record()

    families = _scrape(client)
    assert _value(families, "autoglue_audit_chains_broken") == 1
    assert _value(families, "autoglue_audit_last_verification_timestamp_seconds") > 0


def test_workers_gone_for_an_hour_are_forgotten_and_recent_ones_judged_by_redis_time(consumers):
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    now = float(client.time()[0])
    client.hset(
        broker.CONSUMERS_KEY,
        mapping={
            "ssh ssh@long-gone": now - 2 * broker.CONSUMER_FORGET_SECONDS,
            "ssh ssh@quiet": now - broker.CONSUMER_STALE_SECONDS - 5,
        },
    )
    broker.consumer_beat(queues=["default"], hostname="worker@alive")

    counts = broker.queue_consumers()

    assert counts == {"ssh": 0, "default": 1}
    assert set(client.hkeys(broker.CONSUMERS_KEY)) == {b"ssh ssh@quiet", b"default worker@alive"}
    client.close()


def _first_run(client, schedule: str) -> float | None:
    return _value(
        _scrape(client), "autoglue_schedule_first_run_timestamp_seconds", schedule=schedule
    )


def test_a_backup_that_fails_from_the_first_day_shows_when_it_first_ran_and_no_success(
    client, metrics_on, settings
):
    settings.JOBS_PUBLISH = False
    before = timezone.now().timestamp()
    _finish("backup", JobRun.Status.FAILED, {"scheduled": True})
    first = _first_run(client, "maintenance-backup")
    assert first is not None and before - 1 <= first <= timezone.now().timestamp()
    assert _success(client, "maintenance-backup") is None

    # Later runs, failed or not, leave the first run where it was: it is what "never
    # succeeded for two intervals" is measured from.
    from apps.jobs.models import ScheduleFirstRun

    ScheduleFirstRun.objects.filter(name="maintenance-backup").update(
        ran_at=timezone.now() - timedelta(days=3)
    )
    _finish("backup", JobRun.Status.FAILED, {"scheduled": True})
    _finish("backup", JobRun.Status.SUCCEEDED, {"scheduled": True})
    three_days_ago = (timezone.now() - timedelta(days=3)).timestamp()
    assert abs(_first_run(client, "maintenance-backup") - three_days_ago) < 60
    assert _success(client, "maintenance-backup") is not None


def test_a_beat_task_that_raises_marks_its_schedules_first_run_and_no_success(
    client, metrics_on, monkeypatch
):
    from apps.audit import services as audit_services
    from apps.audit.tasks import audit_seal

    def broken() -> int:
        raise RuntimeError("CANARY-seal-failed")

    monkeypatch.setattr(audit_services, "audit_seal_pending", broken)
    # Through Celery itself (eager: the task's signals are sent as in a worker), so the hook
    # is proven connected, not only callable.
    result = audit_seal.apply(throw=False)

    assert result.failed()
    assert _first_run(client, "audit-seal") is not None
    assert _success(client, "audit-seal") is None


def test_a_first_run_under_a_name_the_code_does_not_know_never_becomes_a_label(client, metrics_on):
    services.schedule_run_record(name="CANARY-admin-first-row")

    scraped = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    assert "autoglue_schedule_first_run_timestamp_seconds" in scraped
    assert "CANARY-admin-first-row" not in scraped

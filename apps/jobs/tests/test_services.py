"""The job life cycle: enqueue on commit, one claim per run, batched and redacted logs, finish,
cancel, retry and the reaper."""

from __future__ import annotations

import base64
import uuid
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection
from django.utils import timezone

from apps.audit.services import AuditChainSealer
from apps.infrastructure.models import Server
from apps.infrastructure.tests.factories import ServerFactory
from apps.jobs import broker, services
from apps.jobs.logs import REDACTED, LogWriter
from apps.jobs.models import JobLog, JobRun

pytestmark = pytest.mark.django_db


def _bootstrap_job(org, **fields) -> JobRun:
    server = ServerFactory(organization=org, role="bastion", public_ip_address="203.0.113.9")
    return JobRun.objects.create(
        kind="bootstrap_bastion",
        queue="ssh",
        organization=org,
        subject_type="server",
        subject_id=server.pk,
        max_attempts=2,
        **fields,
    )


def test_a_job_is_recorded_at_once_and_its_message_sent_only_after_commit(
    org, django_capture_on_commit_callbacks, settings
):
    settings.JOBS_PUBLISH = False
    server = ServerFactory(organization=org)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = services.job_enqueue(
            kind="bootstrap_bastion",
            organization_id=org.pk,
            subject_type="server",
            subject_id=server.pk,
        )
        assert JobRun.objects.get(pk=job.pk).sent_at is None

    # Besides the send, the sealer of the job.launch audit entry (apps.audit) runs on commit.
    sends = [c for c in callbacks if not isinstance(c, AuditChainSealer)]
    assert len(sends) == 1
    sends[0]()
    job.refresh_from_db()
    assert (job.status, job.queue, job.sent_at is not None) == ("queued", "ssh", True)


def test_a_second_active_job_of_a_kind_for_one_subject_is_refused(org):
    job = _bootstrap_job(org)

    with pytest.raises(services.JobActive) as refused:
        services.job_enqueue(
            kind="bootstrap_bastion",
            organization_id=org.pk,
            subject_type="server",
            subject_id=job.subject_id,
        )

    assert refused.value.job == job


def test_only_the_first_delivery_claims_a_run(org):
    job = _bootstrap_job(org)

    first = services.job_claim(job_id=job.pk, task_id="a", worker="w1")
    second = services.job_claim(job_id=job.pk, task_id="b", worker="w2")

    assert first is not None and first.status == "running" and first.attempts == 1
    assert second is None
    assert JobRun.objects.get(pk=job.pk).worker == "w1"


def test_finish_applies_only_to_a_running_run(org):
    job = _bootstrap_job(org)
    assert services.job_finish(job=job, status="succeeded") is False
    job = services.job_claim(job_id=job.pk)

    assert services.job_finish(job=job, status="failed", error="boom", result={"n": 1}) is True
    assert services.job_finish(job=job, status="succeeded") is False
    job.refresh_from_db()
    assert (job.status, job.error, job.result) == ("failed", "boom", {"n": 1})
    assert job.finished_at is not None


def test_log_lines_are_batched_until_the_size_or_the_interval(org, settings):
    settings.JOB_LOG_FLUSH_BYTES = 64
    settings.JOB_LOG_FLUSH_SECONDS = 3600
    job = _bootstrap_job(org)
    writer = LogWriter(job)

    writer.write("stdout", "one\n")
    writer.write("stdout", "two\n")
    assert JobLog.objects.count() == 0
    writer.write("stdout", "x" * 70 + "\n")
    assert list(JobLog.objects.values_list("chunk", flat=True)) == ["one\ntwo\n" + "x" * 70 + "\n"]
    writer.write("stderr", "partial")
    writer.flush()
    assert JobLog.objects.count() == 1  # a partial line waits for its newline
    writer.flush(final=True)
    assert JobLog.objects.order_by("id").last().chunk == "partial"


def test_every_form_of_a_secret_is_redacted_even_when_split_across_writes(org, settings):
    settings.JOB_LOG_FLUSH_SECONDS = 3600
    job = _bootstrap_job(org)
    writer = LogWriter(job)
    secret = (
        "-----BEGIN KEY-----\nCANARY-line-one-abcdef\nCANARY-line-two-abcdef\n-----END KEY-----"
    )
    writer.add_secret(secret)
    writer.add_secret("CANARY-TOKEN-0123456789")

    writer.write("stdout", "token=CANARY-TOKEN-01")
    writer.write("stdout", "23456789 ok\n")
    writer.write("stdout", secret + "\n")
    writer.write("stdout", "b64 " + base64.b64encode(secret.encode()).decode() + "\n")
    writer.write("stdout", "just CANARY-line-two-abcdef\n")
    writer.flush(final=True)

    text = "".join(JobLog.objects.values_list("chunk", flat=True))
    assert "CANARY" not in text
    assert text.count(REDACTED) == 4
    assert "token=[REDACTED] ok" in text


def test_canceling_a_queued_run_ends_it_and_its_subject_at_once(org):
    job = _bootstrap_job(org)
    Server.objects.filter(pk=job.subject_id).update(status="provisioning")

    services.job_request_cancel(job=job)

    job.refresh_from_db()
    assert job.status == "canceled" and job.finished_at is not None
    server = Server.objects.get(pk=job.subject_id)
    assert (server.status, server.last_error) == ("failed", "canceled before it started")
    with pytest.raises(services.JobStateError):
        services.job_request_cancel(job=job)


def test_canceling_a_running_run_asks_it_to_stop(org):
    job = _bootstrap_job(org)
    services.job_claim(job_id=job.pk)

    services.job_request_cancel(job=job)

    job.refresh_from_db()
    assert (job.status, job.cancel_requested) == ("running", True)
    assert services.job_heartbeat(job=job) is True


def test_the_reaper_requeues_a_lost_idempotent_run_and_fails_it_when_out_of_attempts(org):
    job = _bootstrap_job(org)
    services.job_claim(job_id=job.pk)
    later = timezone.now() + timedelta(hours=1)

    assert services.job_reap(now=later)["requeued"] == 1
    job.refresh_from_db()
    assert job.status == "retrying"
    services.job_claim(job_id=job.pk)  # attempt 2 of 2
    assert services.job_reap(now=later)["failed"] == 1
    job.refresh_from_db()
    assert job.status == "failed" and "worker lost" in job.error
    assert Server.objects.get(pk=job.subject_id).status == "failed"


def test_the_reaper_resends_a_queued_run_whose_message_never_arrived(org):
    job = _bootstrap_job(org, sent_at=timezone.now())
    broker.broker_came_back_empty()  # a broker that has kept its messages

    assert services.job_reap()["resent"] == 0
    assert services.job_reap(now=timezone.now() + timedelta(hours=1))["resent"] == 1
    job.refresh_from_db()
    assert job.status == "queued"


def test_a_failed_run_can_be_retried_once_and_a_succeeded_one_cannot(org):
    job = _bootstrap_job(org)
    job = services.job_claim(job_id=job.pk)
    services.job_finish(job=job, status="failed", error="x")

    retried = services.job_retry(job=job)

    assert (retried.status, retried.error) == ("queued", "")
    job = services.job_claim(job_id=job.pk)
    services.job_finish(job=job, status="succeeded")
    with pytest.raises(services.JobStateError):
        services.job_retry(job=job)


def test_a_secret_in_a_line_longer_than_the_flush_size_is_still_redacted(org, settings):
    settings.JOB_LOG_FLUSH_BYTES = 32
    settings.JOB_LOG_FLUSH_SECONDS = 3600
    job = _bootstrap_job(org)
    writer = LogWriter(job)
    writer.add_secret("CANARY-ORG-SECRET-0123456789")

    writer.write("stdout", "x" * 30 + "CANARY-ORG-SE")
    writer.write("stdout", "CRET-0123456789" + "y" * 40)
    writer.flush(final=True)

    text = "".join(JobLog.objects.order_by("id").values_list("chunk", flat=True))
    assert "CANARY" not in text and "[REDACTED]" in text


def test_a_worker_the_reaper_gave_up_on_cannot_end_the_attempt_that_replaced_it(org):
    job = _bootstrap_job(org)
    first = services.job_claim(job_id=job.pk)
    services.job_reap(now=timezone.now() + timedelta(hours=1))  # requeued: attempt 1 lost
    second = services.job_claim(job_id=job.pk)

    assert services.job_heartbeat(job=first) is True  # told to stop
    assert services.job_finish(job=first, status="failed", error="late") is False
    assert services.job_finish(job=second, status="succeeded") is True


def test_the_reaper_resends_every_queued_run_at_once_when_the_broker_came_back_empty(org):
    sent = _bootstrap_job(org, sent_at=timezone.now())
    later = _bootstrap_job(org, sent_at=timezone.now() + timedelta(minutes=10))  # run_at
    broker.broker_came_back_empty()
    assert services.job_reap()["resent"] == 0

    _redis().delete(broker.MARKER_KEY)  # what a restart without persistence, or a flush, does

    assert services.job_reap()["resent"] == 2
    assert services.job_reap()["resent"] == 0  # one loss is acted on once
    later.refresh_from_db()
    assert later.sent_at > timezone.now() + timedelta(minutes=9)  # still delayed
    assert {sent.status, later.status} == {"queued"}


def test_the_reaper_sends_a_run_whose_message_could_not_be_published_on_its_next_tick(
    org, django_capture_on_commit_callbacks
):
    job = _bootstrap_job(org, sent_at=None)
    broker.broker_came_back_empty()
    JobRun.objects.filter(pk=job.pk).update(queued_at=timezone.now() - timedelta(seconds=10))

    with django_capture_on_commit_callbacks(execute=True):
        assert services.job_reap()["resent"] == 1
    job.refresh_from_db()
    assert job.sent_at is not None


def test_a_run_is_taken_for_lost_after_three_missed_heartbeats_and_not_before(org, settings):
    settings.JOB_HEARTBEAT_SECONDS = 5
    settings.JOB_HEARTBEAT_STALE_SECONDS = 1  # set too low alone: three heartbeats still count
    job = _bootstrap_job(org)
    services.job_claim(job_id=job.pk)
    claimed = JobRun.objects.get(pk=job.pk).heartbeat_at

    assert services.job_reap(now=claimed + timedelta(seconds=14))["requeued"] == 0
    assert services.job_reap(now=claimed + timedelta(seconds=16))["requeued"] == 1


def _redis():
    import redis
    from django.conf import settings as django_settings

    return redis.Redis.from_url(django_settings.CELERY_BROKER_URL)


def test_a_pod_of_the_previous_release_can_still_queue_runs_without_the_trace_column(org):
    # Rolling upgrade: the old code's INSERT does not name trace_parent.
    server = ServerFactory(organization=org)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO jobs_jobrun (id, kind, queue, organization_id, subject_type,"
            " subject_id, payload, status, attempts, max_attempts, queued_at, cancel_requested,"
            " error, celery_task_id, worker, result, updated_at)"
            " VALUES (%s, 'bootstrap_bastion', 'ssh', %s, 'server', %s, '{}', 'queued', 0, 2,"
            " now(), false, '', '', '', '{}', now())",
            [uuid.uuid4(), org.pk, server.pk],
        )
    assert JobRun.objects.get(subject_id=server.pk).trace_parent == ""


def test_an_integrity_error_that_is_not_an_active_run_is_not_answered_as_one(org):
    # Any other constraint failing is a fault to surface, not "a run is already active" (409).
    server = ServerFactory(organization=org)
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE jobs_jobrun ADD CONSTRAINT test_no_payload_x CHECK (NOT payload ? 'x')"
        )
    with pytest.raises(IntegrityError):
        services.job_enqueue(
            kind="bootstrap_bastion",
            organization_id=org.pk,
            subject_type="server",
            subject_id=server.pk,
            payload={"x": 1},
        )


# --- a schedule's first run (AutoglueScheduleNeverSucceeded measures from it) ---------------


def _backup_run(*, scheduled: bool) -> JobRun:
    """A claimed backup run on its last attempt (the reaper fails it rather than requeue it)."""
    job = services.job_enqueue(kind="backup", payload={"scheduled": scheduled})
    JobRun.objects.filter(pk=job.pk).update(max_attempts=1)
    return services.job_claim(job_id=job.pk)


def test_a_scheduled_backup_whose_worker_dies_every_time_still_starts_the_never_succeeded_clock(
    settings,
):
    from apps.jobs.models import ScheduleFirstRun

    settings.JOBS_PUBLISH = False
    job = _backup_run(scheduled=True)

    assert services.job_reap(now=timezone.now() + timedelta(hours=1))["failed"] == 1
    job.refresh_from_db()
    assert job.status == "failed"
    assert ScheduleFirstRun.objects.filter(name="maintenance-backup").exists()


def test_a_hand_started_backup_does_not_start_the_never_succeeded_clock(settings):
    from apps.jobs.models import ScheduleFirstRun

    settings.JOBS_PUBLISH = False
    services.job_finish(job=_backup_run(scheduled=False), status="failed", error="boom")
    reaped = _backup_run(scheduled=False)
    services.job_reap(now=timezone.now() + timedelta(hours=1))
    reaped.refresh_from_db()

    assert reaped.status == "failed"
    assert not ScheduleFirstRun.objects.filter(name="maintenance-backup").exists()
    # Its success is a fresh backup all the same (the staleness alerts read it).
    services.job_finish(job=_backup_run(scheduled=False), status="succeeded")
    assert services.ScheduleSuccess.objects.filter(name="maintenance-backup").exists()


def test_a_database_error_recording_the_first_run_loses_neither_the_success_nor_the_task(
    settings, monkeypatch, caplog
):
    from django.db import DatabaseError

    from apps.jobs.models import ScheduleFirstRun

    settings.JOBS_PUBLISH = False
    job = _backup_run(scheduled=True)

    def broken(*args, **kwargs):
        raise DatabaseError("CANARY-connection-string password=hunter2")

    monkeypatch.setattr(ScheduleFirstRun.objects, "bulk_create", broken)
    assert services.job_finish(job=job, status="succeeded") is True

    job.refresh_from_db()
    assert job.status == "succeeded"
    assert services.ScheduleSuccess.objects.filter(name="maintenance-backup").exists()
    assert "maintenance-backup" in caplog.text
    assert "CANARY" not in caplog.text and "hunter2" not in caplog.text

"""Job runs in the console: filters, retry and cancel through the jobs services (each leaving an
admin log entry), the log viewer's stream, and the beat schedules."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.admin.models import LogEntry
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from apps.console.tests.support import job_run
from apps.jobs.models import JobLog, JobRun


def _log(job: JobRun, *lines: str) -> None:
    for text in lines:
        JobLog.objects.create(job=job, stream="stdout", chunk=text + "\n")


def test_the_job_list_filters_by_status_and_kind_and_shows_duration(console):
    started = timezone.now() - timedelta(seconds=75)
    job_run(status="succeeded", started_at=started, finished_at=started + timedelta(seconds=4.2))
    job_run(kind="bootstrap_bastion", status="failed", error="host key changed")
    page = console.get("/admin/jobs/jobrun/?status__exact=succeeded")
    assert [j.status for j in page.context["cl"].result_list] == ["succeeded"]
    assert b"4.2 s" in page.content
    page = console.get("/admin/jobs/jobrun/?kind=bootstrap_bastion")
    assert [j.kind for j in page.context["cl"].result_list] == ["bootstrap_bastion"]


def test_the_job_list_reads_a_bounded_number_of_queries(
    console, org, django_assert_max_num_queries
):
    for _ in range(30):
        job_run(status="failed", organization=org, finished_at=timezone.now())
    with django_assert_max_num_queries(12):
        assert console.get("/admin/jobs/jobrun/").status_code == 200


def test_retrying_a_failed_run_queues_it_again_and_is_logged(console, platform_admin):
    job = job_run(status="failed", error="boom", finished_at=timezone.now())
    response = console.post(
        "/admin/jobs/jobrun/",
        {"action": "retry_selected", "_selected_action": [str(job.pk)]},
    )
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == "queued" and job.error == ""
    entry = LogEntry.objects.get(object_id=str(job.pk))
    assert entry.user == platform_admin and "retry" in entry.get_change_message()


def test_a_run_that_cannot_be_retried_says_why(console):
    job = job_run(status="running", started_at=timezone.now())
    response = console.post(
        "/admin/jobs/jobrun/",
        {"action": "retry_selected", "_selected_action": [str(job.pk)]},
        follow=True,
    )
    assert b"only a failed or canceled job can be retried" in response.content
    assert not LogEntry.objects.exists()


def test_canceling_a_queued_run_from_its_page_ends_it(console):
    job = job_run(status="queued")
    page = console.get(f"/admin/jobs/jobrun/{job.pk}/change/")
    assert b'id="job-cancel"' in page.content
    response = console.post(f"/admin/jobs/jobrun/{job.pk}/cancel/")
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == "canceled"
    assert LogEntry.objects.filter(object_id=str(job.pk)).count() == 1


def test_the_job_page_carries_the_live_log_viewer(console):
    job = job_run(status="running", started_at=timezone.now())
    page = console.get(f"/admin/jobs/jobrun/{job.pk}/change/").content.decode()
    assert f'data-stream-url="/admin/jobs/jobrun/{job.pk}/log/stream/"' in page
    assert "/static/console/joblog.js" in page
    assert "<script>" not in page


def test_a_finished_runs_stream_sends_its_own_lines_then_ends(console):
    job = job_run(status="succeeded", finished_at=timezone.now())
    other = job_run(status="succeeded", finished_at=timezone.now())
    _log(job, "first line", "second line")
    _log(other, "another run's line")
    response = console.get(f"/admin/jobs/jobrun/{job.pk}/log/stream/")
    assert response["Content-Type"] == "text/event-stream"
    body = b"".join(response.streaming_content).decode()
    assert "first line" in body and "second line" in body
    assert "another run's line" not in body
    assert body.rstrip().split("\n")[-2] == "event: end"


def test_an_operator_past_the_stream_cap_gets_429_until_a_stream_ends(console, settings):
    settings.JOB_LOG_STREAMS_PER_PRINCIPAL = 1
    job = job_run(status="succeeded", finished_at=timezone.now())
    _log(job, "only line")
    first = console.get(f"/admin/jobs/jobrun/{job.pk}/log/stream/")
    refused = console.get(f"/admin/jobs/jobrun/{job.pk}/log/stream/")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert refused.json()["code"] == "too_many_streams"
    assert b"event: end" in b"".join(first.streaming_content)  # the first ends: its slot is free
    assert console.get(f"/admin/jobs/jobrun/{job.pk}/log/stream/").status_code == 200


def test_the_stream_is_only_for_signed_in_operators(client, db):
    job = job_run(status="succeeded")
    response = client.get(f"/admin/jobs/jobrun/{job.pk}/log/stream/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_beat_schedules_are_editable(console):
    every = IntervalSchedule.objects.create(every=30, period="seconds")
    # The migrations already created it (apps/maintenance); the operator edits that row.
    task, _ = PeriodicTask.objects.update_or_create(
        name="jobs-reap", defaults={"task": "jobs.reap", "interval": every}
    )
    assert console.get("/admin/django_celery_beat/periodictask/").status_code == 200
    page = console.get(f"/admin/django_celery_beat/periodictask/{task.pk}/change/")
    form = page.context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None}
    data.update(
        name="jobs-reap",
        regtask="jobs.reap",
        task="jobs.reap",
        interval=every.pk,
        enabled="",
        args="[]",
        kwargs="{}",
        headers="{}",
        priority="",
        expire_seconds="",
        queue="",
        exchange="",
        routing_key="",
        description="paused by the operator",
    )
    data.pop("crontab", None), data.pop("solar", None), data.pop("clocked", None)
    response = console.post(f"/admin/django_celery_beat/periodictask/{task.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    task.refresh_from_db()
    assert task.enabled is False and task.description == "paused by the operator"


def test_a_member_sees_only_their_organizations_runs_and_cannot_retry(org, other_org, member):
    from django.test import Client

    ours = job_run(status="failed", organization=org, finished_at=timezone.now())
    theirs = job_run(status="failed", organization=other_org, finished_at=timezone.now())
    platform = job_run(status="failed", finished_at=timezone.now())
    alice = Client()
    alice.force_login(member)
    page = alice.get("/admin/jobs/jobrun/")
    assert [j.pk for j in page.context["cl"].result_list] == [ours.pk]
    assert "retry_selected" not in page.content.decode()
    for hidden in (theirs, platform):
        assert alice.get(f"/admin/jobs/jobrun/{hidden.pk}/change/").status_code == 302
        assert alice.get(f"/admin/jobs/jobrun/{hidden.pk}/log/stream/").status_code == 404
    assert alice.post(f"/admin/jobs/jobrun/{ours.pk}/retry/").status_code == 404
    ours.refresh_from_db()
    assert ours.status == "failed"


def test_a_runs_subject_links_to_its_page(console, org):
    from apps.infrastructure.tests.factories import ServerFactory

    server = ServerFactory(organization=org)
    job_run(kind="bootstrap_bastion", subject_type="server", subject_id=server.pk, organization=org)
    page = console.get("/admin/jobs/jobrun/").content.decode()
    assert f'href="/admin/infrastructure/server/{server.pk}/change/"' in page


def test_a_viewer_sees_a_run_but_not_its_log(org, viewer, member):
    # Logs may hold what a viewer may not reveal (docs/console-permissions.md).
    from django.test import Client

    job = job_run(status="succeeded", organization=org, finished_at=timezone.now())
    _log(job, "CANARY-log-line")
    bob = Client()
    bob.force_login(viewer)
    page = bob.get(f"/admin/jobs/jobrun/{job.pk}/change/")
    assert page.status_code == 200
    assert "data-stream-url" not in page.content.decode()
    assert "does not allow reading job logs" in page.content.decode()
    assert bob.get(f"/admin/jobs/jobrun/{job.pk}/log/stream/").status_code == 403
    alice = Client()
    alice.force_login(member)
    stream = alice.get(f"/admin/jobs/jobrun/{job.pk}/log/stream/")
    assert "CANARY-log-line" in b"".join(stream.streaming_content).decode()

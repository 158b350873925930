"""The sweepers at their boundaries: exactly what is deleted or revoked, and what is kept."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.models import APIKey, RefreshToken
from apps.jobs.models import JobLog, JobRun
from apps.jobs.services import job_enqueue
from apps.jobs.tests.support import run_queued
from apps.maintenance import services
from apps.maintenance.postgres import Target
from apps.maintenance.tests.factories import (
    APIKeyFactory,
    JobLogFactory,
    JobRunFactory,
    RefreshTokenFactory,
)

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)
SECOND = timedelta(seconds=1)


def _states(queryset) -> dict[str, str]:
    return {k.name: ("revoked" if k.revoked_at else "live") for k in queryset.order_by("name")}


def test_key_sweep_revokes_keys_expired_by_now_and_keeps_the_rest(org, member):
    APIKeyFactory(organization=org, name="expired exactly now", expires_at=NOW)
    APIKeyFactory(organization=org, name="expires in a second", expires_at=NOW + SECOND)
    APIKeyFactory(organization=org, name="no expiry", expires_at=None)
    APIKeyFactory(
        scope=APIKey.Scope.USER, user=member, name="user key expired", expires_at=NOW - SECOND
    )
    earlier = NOW - timedelta(days=3)
    APIKeyFactory(
        organization=org, name="revoked before", expires_at=NOW - SECOND, revoked_at=earlier
    )

    counts = services.api_keys_sweep(now=NOW)

    assert counts["revoked"] == 2
    assert _states(APIKey.objects.all()) == {
        "expired exactly now": "revoked",
        "expires in a second": "live",
        "no expiry": "live",
        "revoked before": "revoked",
        "user key expired": "revoked",
    }
    assert APIKey.objects.get(name="revoked before").revoked_at == earlier


def test_key_sweep_purges_ephemeral_keys_only_after_the_grace_period(org, settings):
    settings.EPHEMERAL_KEY_GRACE_HOURS = 24
    grace = timedelta(hours=24)
    for name, fields in {
        "past grace": {"expires_at": NOW - grace - SECOND},
        "at grace": {"expires_at": NOW - grace},
        "expired an hour ago": {"expires_at": NOW - timedelta(hours=1)},
        "live": {"expires_at": NOW + timedelta(hours=20)},
        "revoked past grace": {
            "expires_at": NOW + timedelta(hours=1),
            "revoked_at": NOW - grace - SECOND,
        },
    }.items():
        APIKeyFactory(
            organization=org, name=name, purpose="cluster_bastion", is_ephemeral=True, **fields
        )

    counts = services.api_keys_sweep(now=NOW)

    assert counts["ephemeral_purged"] == 2
    assert sorted(APIKey.objects.values_list("name", flat=True)) == [
        "at grace",
        "expired an hour ago",
        "live",
    ]
    # Ephemeral keys are purged, never merely revoked.
    assert not APIKey.objects.filter(revoked_at__isnull=False).exists()


def test_refresh_token_purge_deletes_only_tokens_past_their_grace(member, settings):
    settings.REFRESH_TOKEN_GRACE_HOURS = 24
    grace = timedelta(hours=24)
    kept = {
        "live": RefreshTokenFactory(user=member),
        "used but live": RefreshTokenFactory(user=member, used_at=NOW - timedelta(hours=30)),
        "expired at grace": RefreshTokenFactory(user=member, expires_at=NOW - grace),
        "revoked an hour ago": RefreshTokenFactory(
            user=member, revoked_at=NOW - timedelta(hours=1)
        ),
    }
    RefreshTokenFactory(user=member, expires_at=NOW - grace - SECOND)
    RefreshTokenFactory(user=member, revoked_at=NOW - grace - SECOND)

    counts = services.refresh_tokens_purge(now=NOW)

    assert counts == {"purged": 2, "finished": 1}
    assert set(RefreshToken.objects.values_list("pk", flat=True)) == {t.pk for t in kept.values()}


def _run(finished_ago: timedelta | None, status=JobRun.Status.SUCCEEDED, logs: int = 2) -> JobRun:
    run = JobRunFactory(status=status, finished_at=NOW - finished_ago if finished_ago else None)
    for _ in range(logs):
        JobLogFactory(job=run)
    return run


def _age_logs(run: JobRun, age: timedelta) -> None:
    JobLog.objects.filter(job=run).update(created_at=NOW - age)


def test_job_retention_deletes_runs_and_logs_past_the_retention_only(settings):
    settings.JOB_RETENTION_DAYS = 45
    retention = timedelta(days=45)
    old = _run(retention + SECOND)
    _age_logs(old, retention + timedelta(hours=1))
    at_boundary = _run(retention)
    _age_logs(at_boundary, retention + timedelta(hours=1))
    recent = _run(timedelta(days=1))
    # Queued or running for ages (a stuck run the reaper will handle): never deleted.
    stuck = _run(None, status=JobRun.Status.RUNNING)
    _age_logs(stuck, timedelta(days=90))

    counts = services.job_records_purge(now=NOW)

    assert set(JobRun.objects.values_list("pk", flat=True)) == {at_boundary.pk, recent.pk, stuck.pk}
    # The boundary run stays, but its log lines older than the retention go.
    assert JobLog.objects.filter(job=at_boundary).count() == 0
    assert JobLog.objects.filter(job=recent).count() == 2
    assert JobLog.objects.filter(job=stuck).count() == 2
    assert counts == {"runs_deleted": 1, "logs_deleted": 4, "finished": 1}


def test_job_retention_works_in_small_batches_and_resumes_where_it_stopped(settings):
    settings.JOB_RETENTION_DAYS = 45
    settings.MAINTENANCE_DELETE_BATCH_SIZE = 2
    for _ in range(5):
        _run(timedelta(days=60), logs=0)
    batches = []

    def stop_after_first_batch() -> bool:
        batches.append(1)
        return True

    first = services.job_records_purge(now=NOW, should_stop=stop_after_first_batch)
    assert first == {"runs_deleted": 2, "logs_deleted": 0, "finished": 0}
    assert JobRun.objects.count() == 3
    second = services.job_records_purge(now=NOW)
    assert second == {"runs_deleted": 3, "logs_deleted": 0, "finished": 1}
    assert JobRun.objects.count() == 0


def _vacuum_count(table: str) -> int:
    with Target.from_django().connect() as conn:
        row = conn.execute(
            "SELECT vacuum_count + analyze_count FROM pg_stat_user_tables WHERE relname = %s",
            [table],
        ).fetchone()
    return int(row[0]) if row else 0


def test_vacuum_analyzes_the_busy_tables_and_skips_unknown_names(settings):
    settings.MAINTENANCE_VACUUM_TABLES = ["jobs_joblog", "no_such_table"]
    before = _vacuum_count("jobs_joblog")
    counts = services.tables_vacuum()
    assert counts == {"vacuumed": 1, "skipped": 1}
    deadline = time.monotonic() + 5
    while _vacuum_count("jobs_joblog") < before + 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _vacuum_count("jobs_joblog") >= before + 2


@pytest.mark.parametrize(
    "kind", ["api_key_sweep", "refresh_token_purge", "job_retention", "vacuum"]
)
def test_each_sweep_runs_as_a_job_with_a_record_and_counts(kind):
    job = job_enqueue(kind=kind)
    assert run_queued(kind) == ["succeeded"]
    job.refresh_from_db()
    assert job.queue == "maintenance"
    assert job.result["duration_seconds"] >= 0
    assert any(isinstance(v, int) for k, v in job.result.items() if k != "log_chunks")
    assert JobLog.objects.filter(job=job).exists()


def test_key_sweep_job_logs_keys_expiring_soon_without_secrets(org, settings):
    settings.EXPIRY_WARNING_DAYS = 14
    soon = APIKeyFactory(
        organization=org, name="terraform", expires_at=timezone.now() + timedelta(days=3)
    )
    APIKeyFactory(organization=org, name="later", expires_at=timezone.now() + timedelta(days=30))
    job = job_enqueue(kind="api_key_sweep")
    run_queued("api_key_sweep")
    job.refresh_from_db()
    transcript = "".join(JobLog.objects.filter(job=job).values_list("chunk", flat=True))
    assert job.result["expiring_soon"] == 1
    assert f"org Acme: key 'terraform' ({soon.prefix}) expires" in transcript
    assert "later" not in transcript
    assert soon.secret_hash not in transcript

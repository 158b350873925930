"""A scheduled backup run of the platform's own database, and backup retention."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.jobs.models import JobLog
from apps.jobs.services import job_enqueue
from apps.jobs.tests.support import run_queued
from apps.maintenance import services
from apps.maintenance.models import Backup
from apps.maintenance.tests.conftest import BUCKET

pytestmark = pytest.mark.django_db


def _keys(client) -> set[str]:
    return {o["Key"] for o in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def test_backup_job_backs_up_the_platform_database_with_a_record_and_summary(backup_bucket):
    job = job_enqueue(kind="backup")
    assert run_queued("backup") == ["succeeded"]
    job.refresh_from_db()
    backup = Backup.objects.get(job=job)
    assert backup.status == Backup.Status.SUCCEEDED
    assert job.result["object_key"] == backup.object_key
    assert job.result["sha256"] == backup.sha256
    assert job.result["retention_objects_deleted"] == 0
    assert _keys(backup_bucket) == {backup.object_key, backup.object_key + ".json"}
    transcript = "".join(JobLog.objects.filter(job=job).values_list("chunk", flat=True))
    assert f"stored {backup.object_key}" in transcript
    services.backup_verify(object_key=backup.object_key)


def test_backup_job_fails_readably_without_a_bucket(settings):
    settings.BACKUP_S3_BUCKET = ""
    settings.AUTOGLUE_BACKUP_KEYS = "k:" + "A" * 43 + "="
    job = job_enqueue(kind="backup")
    assert run_queued("backup") == ["failed"]
    job.refresh_from_db()
    assert job.error == "BACKUP_S3_BUCKET is not set"


def test_retention_deletes_old_backups_but_always_keeps_the_newest_few(backup_bucket, settings):
    settings.BACKUP_RETENTION_DAYS = 30
    settings.BACKUP_KEEP_MIN = 3
    made = [services.backup_create() for _ in range(5)]
    failed = Backup.objects.create(
        bucket=BUCKET,
        object_key="autoglue/backups/failed.agbk",
        key_id="bk-test",
        status=Backup.Status.FAILED,
    )
    now = timezone.now()

    within = services.backup_prune(now=now + timedelta(days=29))
    assert within["objects_deleted"] == 0
    assert Backup.objects.count() == 6

    Backup.objects.filter(pk=failed.pk).update(started_at=now - timedelta(days=31))
    beyond = services.backup_prune(now=now + timedelta(days=31))
    newest = sorted(made, key=lambda b: b.started_at)[-3:]
    assert beyond["objects_deleted"] == 2
    assert set(Backup.objects.values_list("pk", flat=True)) == {b.pk for b in newest}
    assert _keys(backup_bucket) == {
        key for b in newest for key in (b.object_key, b.object_key + ".json")
    }


def test_backup_command_runs_one_now_with_progress_lines(backup_bucket, capsys):
    from django.core.management import call_command

    call_command("backup")
    out, err = capsys.readouterr()
    backup = Backup.objects.get()
    assert out.strip() == backup.object_key
    assert "backing up database" in err
    assert f"stored {backup.object_key}" in err
    assert backup.status == Backup.Status.SUCCEEDED


def test_a_backup_whose_worker_died_is_marked_failed_by_retention(backup_bucket, settings):
    stale = Backup.objects.create(bucket=BUCKET, object_key="autoglue/backups/x.agbk", key_id="k")
    Backup.objects.filter(pk=stale.pk).update(
        started_at=timezone.now() - timedelta(seconds=settings.BACKUP_TIMEOUT_SECONDS + 2 * 3600)
    )
    services.backup_prune()
    stale.refresh_from_db()
    assert stale.status == Backup.Status.FAILED
    assert "abandoned" in stale.error

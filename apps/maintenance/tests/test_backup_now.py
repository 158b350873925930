"""The console's "Back up now": platform admins queue the scheduled backup job and land on its
run's live log page; the job backs up into the (moto) bucket like a scheduled one."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.accounts.tests.factories import UserFactory
from apps.audit import events
from apps.audit.services import audit_record
from apps.jobs.models import JobRun
from apps.jobs.tests.support import run_queued
from apps.maintenance.models import Backup
from apps.maintenance.services import tick_subject
from apps.orgs.tests.admin_support import console_for, staff_of

pytestmark = pytest.mark.django_db

NOW = "/admin/maintenance/backup/backup-now/"


@pytest.fixture
def root() -> Client:
    return console_for(UserFactory(primary_email="rita@autoglue.example", is_admin=True))


def test_back_up_now_queues_a_backup_opens_its_log_and_the_backup_lands(backup_bucket, root):
    listing = root.get("/admin/maintenance/backup/").content.decode()
    assert 'id="backup-now"' in listing
    assert 'id="dash-backup-now"' in root.get("/admin/").content.decode()

    response = root.post(NOW)

    job = JobRun.objects.get(kind="backup")
    assert response.status_code == 302
    assert response["Location"] == f"/admin/jobs/jobrun/{job.pk}/change/"
    assert job.subject_id == tick_subject("backup")
    log_page = root.get(response["Location"]).content.decode()
    assert "log/stream/" in log_page
    assert run_queued("backup") == ["succeeded"]
    backup = Backup.objects.get()
    assert backup.status == Backup.Status.SUCCEEDED
    listed = backup_bucket.list_objects_v2(Bucket="autoglue-backups-test")["Contents"]
    assert backup.object_key in [item["Key"] for item in listed]


def test_a_second_back_up_now_while_one_is_queued_says_so_and_queues_nothing(backup_bucket, root):
    root.post(NOW)
    response = root.post(NOW, follow=True)
    assert "already queued or running" in response.content.decode()
    assert JobRun.objects.filter(kind="backup").count() == 1


def test_back_up_now_with_backups_off_is_refused_with_a_message(root, settings):
    settings.BACKUP_ENABLED = False
    response = root.post(NOW, follow=True)
    assert "backups are off" in response.content.decode()
    assert not JobRun.objects.filter(kind="backup").exists()


def test_back_up_now_is_not_offered_while_backups_are_off(root, settings):
    settings.BACKUP_ENABLED = True
    assert 'id="dash-backup-now"' in root.get("/admin/").content.decode()
    assert 'id="backup-now"' in root.get("/admin/maintenance/backup/").content.decode()
    settings.BACKUP_ENABLED = False
    assert 'id="dash-backup-now"' not in root.get("/admin/").content.decode()
    assert 'id="backup-now"' not in root.get("/admin/maintenance/backup/").content.decode()


def test_back_up_now_is_a_post_only_for_platform_admins(root, org):
    assert root.get(NOW).status_code == 405
    owner = console_for(staff_of(org, "owner", "olivia@acme.example"))
    assert owner.post(NOW).status_code in (302, 403)
    assert 'id="dash-backup-now"' not in owner.get("/admin/").content.decode()
    assert not JobRun.objects.filter(kind="backup").exists()


def test_the_backup_and_audit_lists_show_moments_in_the_viewers_zone(root, org):
    Backup.objects.create(
        status=Backup.Status.SUCCEEDED, bucket="b", object_key="backups/one.dump", key_id="k1"
    )
    audit_record(event=events.RESOURCE_UPDATE, organization_id=org.pk)
    backups = root.get("/admin/maintenance/backup/").content.decode()
    audit = root.get("/admin/audit/auditentry/").content.decode()
    assert '<time datetime="' in backups and 'data-status="succeeded"' in backups
    assert '<time datetime="' in audit

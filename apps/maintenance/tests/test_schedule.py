"""Schedules in the database, and ticks that two beats cannot run twice."""

from __future__ import annotations

import importlib
import json
import threading
from datetime import timedelta

import pytest
from django.apps import apps as django_apps
from django.conf import settings as django_settings
from django.db import connection
from django_celery_beat.models import PeriodicTask

from apps.jobs.models import JobRun
from apps.jobs.tests.support import run_queued
from apps.maintenance import services, tasks

pytestmark = pytest.mark.django_db

EXPECTED = {
    "bastion-sweep": ("infrastructure.bastion_sweep", {}),
    "jobs-reap": ("jobs.reap", {}),
    "maintenance-backup": ("maintenance.tick", {"kind": "backup"}),
    "maintenance-api-key-sweep": ("maintenance.tick", {"kind": "api_key_sweep"}),
    "maintenance-refresh-token-purge": ("maintenance.tick", {"kind": "refresh_token_purge"}),
    "maintenance-job-retention": ("maintenance.tick", {"kind": "job_retention"}),
    "maintenance-vacuum": ("maintenance.tick", {"kind": "vacuum"}),
}


def test_every_periodic_job_exists_after_migrate_on_a_fresh_database():
    tasks_by_name = {t.name: t for t in PeriodicTask.objects.select_related("interval")}
    for name, (task, kwargs) in EXPECTED.items():
        periodic = tasks_by_name[name]
        assert periodic.task == task
        assert json.loads(periodic.kwargs) == kwargs
        assert periodic.queue == "maintenance"
        assert periodic.enabled
    seconds = {
        name: tasks_by_name[name].interval.schedule.run_every.total_seconds() for name in EXPECTED
    }
    assert seconds["jobs-reap"] == django_settings.JOB_REAP_INTERVAL_SECONDS
    assert seconds["bastion-sweep"] == django_settings.BASTION_SWEEP_INTERVAL_SECONDS
    assert seconds["maintenance-backup"] == django_settings.BACKUP_INTERVAL_HOURS * 3600
    assert seconds["maintenance-vacuum"] == django_settings.MAINTENANCE_VACUUM_INTERVAL_HOURS * 3600
    assert (
        seconds["maintenance-job-retention"]
        == django_settings.MAINTENANCE_SWEEP_INTERVAL_MINUTES * 60
    )
    # Nothing is declared in settings any more: the database is the one schedule.
    assert django_settings.CELERY_BEAT_SCHEDULE == {}


def test_schedule_intervals_come_from_settings_at_migrate_time(settings):
    settings.BACKUP_INTERVAL_HOURS = 6
    settings.MAINTENANCE_SWEEP_INTERVAL_MINUTES = 15
    PeriodicTask.objects.filter(name__in=list(EXPECTED)).delete()
    migration = importlib.import_module("apps.maintenance.migrations.0002_schedules")
    migration.create_schedules(django_apps, None)
    backup = PeriodicTask.objects.get(name="maintenance-backup")
    sweep = PeriodicTask.objects.get(name="maintenance-api-key-sweep")
    assert backup.interval.schedule.run_every == timedelta(hours=6)
    assert sweep.interval.schedule.run_every == timedelta(minutes=15)
    assert sweep.expire_seconds == 15 * 60


def test_schedule_migration_leaves_an_existing_task_as_the_operator_set_it():
    PeriodicTask.objects.filter(name="maintenance-vacuum").update(enabled=False)
    migration = importlib.import_module("apps.maintenance.migrations.0002_schedules")
    migration.create_schedules(django_apps, None)
    assert PeriodicTask.objects.filter(name="maintenance-vacuum").count() == 1
    assert not PeriodicTask.objects.get(name="maintenance-vacuum").enabled


def _scheduled(kind: str):
    return JobRun.objects.filter(kind=kind, subject_id=services.tick_subject(kind))


def test_a_tick_queues_one_maintenance_job():
    job = services.maintenance_tick(kind="vacuum")
    assert job is not None
    assert job.queue == "maintenance"
    assert job.status == JobRun.Status.QUEUED


def test_a_second_beats_tick_while_the_run_is_queued_does_nothing():
    first = services.maintenance_tick(kind="vacuum")
    assert services.maintenance_tick(kind="vacuum") is None
    assert list(_scheduled("vacuum")) == [first]


def test_a_second_beats_tick_after_the_first_run_finished_does_nothing():
    services.maintenance_tick(kind="vacuum")
    assert run_queued("vacuum") == ["succeeded"]
    assert services.maintenance_tick(kind="vacuum") is None
    assert _scheduled("vacuum").count() == 1


def test_the_next_tick_after_half_the_interval_runs_again():
    first = services.maintenance_tick(kind="vacuum")
    run_queued("vacuum")
    interval = PeriodicTask.objects.get(name="maintenance-vacuum").interval.schedule.run_every
    JobRun.objects.filter(pk=first.pk).update(queued_at=first.queued_at - interval / 2)
    second = services.maintenance_tick(kind="vacuum")
    assert second is not None
    assert _scheduled("vacuum").count() == 2


def test_a_tick_is_skipped_while_a_long_run_of_the_kind_is_still_active():
    first = services.maintenance_tick(kind="job_retention")
    JobRun.objects.filter(pk=first.pk).update(
        status=JobRun.Status.RUNNING, queued_at=first.queued_at - timedelta(days=1)
    )
    assert services.maintenance_tick(kind="job_retention") is None


def test_backup_ticks_do_nothing_while_backups_are_disabled(settings):
    settings.BACKUP_ENABLED = False
    assert services.maintenance_tick(kind="backup") is None
    assert not JobRun.objects.filter(kind="backup").exists()


def test_a_manual_backup_just_before_a_tick_does_not_cancel_the_scheduled_backup(settings):
    settings.BACKUP_ENABLED = True
    manual = services.backup_start_now()
    JobRun.objects.filter(pk=manual.pk).update(status=JobRun.Status.FAILED)
    scheduled = services.maintenance_tick(kind="backup")
    assert scheduled is not None
    assert scheduled.payload["scheduled"] is True
    # The scheduled run still takes its tick: a second beat's tick does nothing.
    assert services.maintenance_tick(kind="backup") is None


def test_the_beat_task_queues_the_job_it_names():
    result = tasks.tick.apply(args=["refresh_token_purge"]).get()
    assert _scheduled("refresh_token_purge").get().pk.hex == result.replace("-", "")


@pytest.mark.django_db(transaction=True)
def test_two_beats_ticking_at_the_same_moment_queue_one_run():
    barrier = threading.Barrier(2)
    results: list[object] = []

    def beat() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(services.maintenance_tick(kind="api_key_sweep"))
        finally:
            connection.close()

    threads = [threading.Thread(target=beat) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sum(1 for r in results if r is not None) == 1
    assert _scheduled("api_key_sweep").count() == 1


def test_an_interval_given_in_the_environment_takes_effect_at_the_next_migrate(
    monkeypatch, settings
):
    from django.core.management import call_command
    from django_celery_beat.models import PeriodicTask

    monkeypatch.setenv("BACKUP_INTERVAL_HOURS", "6")
    settings.BACKUP_INTERVAL_HOURS = 6
    call_command("migrate", verbosity=0)
    task = PeriodicTask.objects.get(name="maintenance-backup")
    assert (task.interval.every, task.interval.period) == (6, "hours")


def test_an_interval_not_given_keeps_what_an_operator_set_on_the_schedule(monkeypatch, settings):
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from apps.maintenance.schedules import schedules_apply_settings

    monkeypatch.delenv("DNS_RECONCILE_INTERVAL_SECONDS", raising=False)
    monkeypatch.delenv("DNS_RECONCILE_INTERVAL_SECONDS_FILE", raising=False)
    settings.DNS_RECONCILE_INTERVAL_SECONDS = 60
    task = PeriodicTask.objects.get(name="dns-reconcile")
    task.interval, _ = IntervalSchedule.objects.get_or_create(every=300, period="seconds")
    task.save()
    assert "dns-reconcile" not in schedules_apply_settings()
    task.refresh_from_db()
    assert task.interval.every == 300


def test_a_schedule_an_operator_moved_to_a_crontab_is_left_alone_and_migrate_still_runs(
    monkeypatch, settings
):
    from django.core.management import call_command
    from django_celery_beat.models import CrontabSchedule

    monkeypatch.setenv("BACKUP_INTERVAL_HOURS", "6")
    settings.BACKUP_INTERVAL_HOURS = 6
    task = PeriodicTask.objects.get(name="maintenance-backup")
    task.interval = None
    task.crontab = CrontabSchedule.objects.create(minute="0", hour="3")
    task.save()
    call_command("migrate", verbosity=0)
    task.refresh_from_db()
    assert task.interval is None and task.crontab is not None

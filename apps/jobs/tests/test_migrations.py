"""The data migration that moves the reaper's schedule from the old 30 s to the setting."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps as django_apps
from django_celery_beat.models import IntervalSchedule, PeriodicTask

pytestmark = pytest.mark.django_db

migration = importlib.import_module("apps.jobs.migrations.0002_reap_every_few_seconds")


def _reaper(every: int) -> PeriodicTask:
    PeriodicTask.objects.filter(name="jobs-reap").delete()
    interval, _ = IntervalSchedule.objects.get_or_create(every=every, period="seconds")
    return PeriodicTask.objects.create(
        name="jobs-reap", task="jobs.reap", interval=interval, expire_seconds=every
    )


def test_an_installation_reaping_every_30_seconds_reaps_every_few_seconds_after_upgrade(settings):
    settings.JOB_REAP_INTERVAL_SECONDS = 5
    task = _reaper(30)

    migration.reap_every_few_seconds(django_apps, None)

    task.refresh_from_db()
    assert (task.interval.every, task.interval.period, task.expire_seconds) == (5, "seconds", 5)


def test_a_reaper_schedule_an_operator_re_timed_is_left_alone(settings):
    settings.JOB_REAP_INTERVAL_SECONDS = 5
    task = _reaper(12)

    migration.reap_every_few_seconds(django_apps, None)

    task.refresh_from_db()
    assert task.interval.every == 12

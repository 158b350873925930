"""The reconcile schedule is a django-celery-beat row made by a data migration."""

from __future__ import annotations

import pytest
from django.conf import settings
from django_celery_beat.models import PeriodicTask

from apps.dns import tasks
from apps.dns.tests.factories import DomainFactory
from apps.jobs.models import JobRun

pytestmark = pytest.mark.django_db


def test_the_dns_reconcile_schedule_exists_with_its_interval_task_and_queue():
    task = PeriodicTask.objects.select_related("interval").get(name="dns-reconcile")
    assert task.task == "dns.reconcile_tick"
    assert task.queue == "maintenance"
    assert task.enabled
    assert (task.interval.every, task.interval.period) == (
        settings.DNS_RECONCILE_INTERVAL_SECONDS,
        "seconds",
    )
    assert "dns-reconcile" not in settings.CELERY_BEAT_SCHEDULE


def test_a_tick_queues_a_reconcile_for_a_pending_domain_of_any_organization(org, other_org):
    mine = DomainFactory(organization=org)
    theirs = DomainFactory(organization=other_org)
    DomainFactory(organization=org, status="failed")  # waits for a PATCH, not the schedule
    assert tasks.reconcile_tick() == 2
    queued = set(JobRun.objects.filter(kind="dns_reconcile").values_list("subject_id", flat=True))
    assert queued == {mine.pk, theirs.pk}

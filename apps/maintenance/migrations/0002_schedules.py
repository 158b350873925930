"""The periodic jobs, in django-celery-beat's tables: created once from the interval settings
(read at migrate time), then editable (paused, re-timed) in the admin. Looked up by name, so
running the migrations again, or a row an earlier beat created, is left as it is."""

from django.conf import settings
from django.db import migrations
from django.utils import timezone

# name -> (task, kwargs, every, period)
SCHEDULES = {
    "bastion-sweep": (
        "infrastructure.bastion_sweep",
        {},
        lambda: settings.BASTION_SWEEP_INTERVAL_SECONDS,
        "seconds",
    ),
    "jobs-reap": ("jobs.reap", {}, lambda: settings.JOB_REAP_INTERVAL_SECONDS, "seconds"),
    "maintenance-backup": (
        "maintenance.tick",
        {"kind": "backup"},
        lambda: settings.BACKUP_INTERVAL_HOURS,
        "hours",
    ),
    "maintenance-api-key-sweep": (
        "maintenance.tick",
        {"kind": "api_key_sweep"},
        lambda: settings.MAINTENANCE_SWEEP_INTERVAL_MINUTES,
        "minutes",
    ),
    "maintenance-refresh-token-purge": (
        "maintenance.tick",
        {"kind": "refresh_token_purge"},
        lambda: settings.MAINTENANCE_SWEEP_INTERVAL_MINUTES,
        "minutes",
    ),
    "maintenance-job-retention": (
        "maintenance.tick",
        {"kind": "job_retention"},
        lambda: settings.MAINTENANCE_SWEEP_INTERVAL_MINUTES,
        "minutes",
    ),
    "maintenance-vacuum": (
        "maintenance.tick",
        {"kind": "vacuum"},
        lambda: settings.MAINTENANCE_VACUUM_INTERVAL_HOURS,
        "hours",
    ),
}
SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600}


def create_schedules(apps, schema_editor):
    import json

    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    for name, (task, kwargs, every, period) in SCHEDULES.items():
        if PeriodicTask.objects.filter(name=name).exists():
            continue
        interval = IntervalSchedule.objects.filter(every=every(), period=period).first()
        if interval is None:
            interval = IntervalSchedule.objects.create(every=every(), period=period)
        PeriodicTask.objects.create(
            name=name,
            task=task,
            interval=interval,
            kwargs=json.dumps(kwargs),
            queue="maintenance",
            # A tick still waiting in the queue by the next one is stale (at most an hour).
            expire_seconds=min(every() * SECONDS[period], 3600),
            enabled=True,
        )
    # Tell a running beat (DatabaseScheduler) that its schedule changed.
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_schedules(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=list(SCHEDULES)).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("maintenance", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]

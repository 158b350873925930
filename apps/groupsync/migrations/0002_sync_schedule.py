"""The "groupsync-sync" schedule as a django-celery-beat row (the project's convention for
periodic jobs): its interval comes from GROUP_SYNC_INTERVAL_MINUTES when migrating; an operator
may re-time or pause it from the admin afterwards, and migrating again leaves the row alone."""

from django.conf import settings
from django.db import migrations

TASK_NAME = "groupsync-sync"


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    minutes = int(settings.GROUP_SYNC_INTERVAL_MINUTES)
    interval, _ = IntervalSchedule.objects.get_or_create(every=minutes, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "groupsync.sync",
            "interval": interval,
            "queue": "maintenance",
            # A run that waited longer than one interval is superseded by the next one.
            "expire_seconds": minutes * 60,
            "description": "Re-read members' Google Workspace groups and apply their roles.",
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("groupsync", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]

"""The "audit-prune" schedule as a django-celery-beat row (the project's convention for periodic
jobs): daily, on the maintenance queue; an operator may re-time or pause it from the admin, and
migrating again leaves an existing row alone."""

from django.db import migrations

TASK_NAME = "audit-prune"


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = IntervalSchedule.objects.get_or_create(every=24, period="hours")
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "audit.prune",
            "interval": interval,
            "queue": "maintenance",
            "expire_seconds": 3600,
            "description": "Delete audit entries past AUDIT_RETENTION_DAYS and old idempotency "
            "keys (apps/audit).",
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]

"""The "audit-seal" schedule as a django-celery-beat row: every 10 seconds, the catch-up that
seals entries whose writer committed but never ran its own sealer (the process died between
commit and seal, or the database refused the seal). Normally every entry is sealed right after
its transaction commits and this finds nothing. Migrating again leaves an existing row alone."""

from django.db import migrations

TASK_NAME = "audit-seal"


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = IntervalSchedule.objects.get_or_create(every=10, period="seconds")
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "audit.seal",
            "interval": interval,
            "queue": "maintenance",
            "expire_seconds": 10,
            "description": "Seal audit entries left unsealed after their transaction committed "
            "(apps/audit, docs/audit.md).",
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0004_unsealed_entries"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]

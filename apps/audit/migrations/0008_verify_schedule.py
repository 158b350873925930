"""The "audit-verify" schedule as a django-celery-beat row: once a day, every chain is verified
and the outcome recorded (the metric `autoglue_audit_chains_broken` and its alert read it).
Migrating again leaves an existing row alone."""

from django.db import migrations

TASK_NAME = "audit-verify"


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = IntervalSchedule.objects.get_or_create(every=24, period="hours")
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "audit.verify",
            "interval": interval,
            "queue": "maintenance",
            "description": "Verify every audit chain and record the outcome "
            "(docs/audit.md, docs/observability.md).",
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0007_audit_verification"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]

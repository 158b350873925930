"""The "dns-reconcile" schedule as a django-celery-beat row (the project's convention for
periodic jobs): its interval comes from DNS_RECONCILE_INTERVAL_SECONDS when migrating; an
operator may re-time or pause it from the admin afterwards, and migrating again leaves an
existing row alone."""

from django.conf import settings
from django.db import migrations

TASK_NAME = "dns-reconcile"


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    seconds = int(settings.DNS_RECONCILE_INTERVAL_SECONDS)
    interval, _ = IntervalSchedule.objects.get_or_create(every=seconds, period="seconds")
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "dns.reconcile_tick",
            "interval": interval,
            "queue": "maintenance",
            # A tick that waited longer than one interval is superseded by the next one.
            "expire_seconds": seconds,
            "description": "Queue DNS reconciles for domains that need one (apps/dns).",
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("dns", "0003_zone_name_plans_settings"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]

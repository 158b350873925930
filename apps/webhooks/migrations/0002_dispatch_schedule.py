"""The `webhooks-dispatch` periodic task (every 5 seconds, on the webhooks queue): publishes due
retries and deliveries whose worker died. Editable (paused, re-timed) in the admin afterwards."""

from django.db import migrations
from django.utils import timezone

NAME = "webhooks-dispatch"
EVERY = 5


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    if PeriodicTask.objects.filter(name=NAME).exists():
        return
    interval = IntervalSchedule.objects.filter(every=EVERY, period="seconds").first()
    if interval is None:
        interval = IntervalSchedule.objects.create(every=EVERY, period="seconds")
    PeriodicTask.objects.create(
        name=NAME,
        task="webhooks.dispatch",
        interval=interval,
        kwargs="{}",
        queue="webhooks",
        # A tick still waiting by the next one is stale.
        expire_seconds=EVERY,
        enabled=True,
    )
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]

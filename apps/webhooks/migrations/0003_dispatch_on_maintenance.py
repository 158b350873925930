"""`webhooks-dispatch` moves to the maintenance queue: on the FIFO `webhooks` queue, a backlog of
deliveries starved its ticks (each expiring after 5 s) exactly when it was needed."""

from django.db import migrations
from django.utils import timezone

NAME = "webhooks-dispatch"


def _move(apps, queue):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    if PeriodicTask.objects.filter(name=NAME).update(queue=queue):
        PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def to_maintenance(apps, schema_editor):
    _move(apps, "maintenance")


def to_webhooks(apps, schema_editor):
    _move(apps, "webhooks")


class Migration(migrations.Migration):
    dependencies = [("webhooks", "0002_dispatch_schedule")]

    operations = [migrations.RunPython(to_maintenance, to_webhooks)]

"""The job reaper's schedule, created every 30 s by maintenance's 0002, now follows
JOB_REAP_INTERVAL_SECONDS (5 s by default): recovery from a lost worker or an emptied broker
takes seconds. A row an operator re-timed (anything other than the old 30 s) is left alone."""

from django.conf import settings
from django.db import migrations
from django.utils import timezone

OLD_EVERY = 30


def reap_every_few_seconds(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    every = settings.JOB_REAP_INTERVAL_SECONDS
    task = PeriodicTask.objects.filter(
        name="jobs-reap", interval__every=OLD_EVERY, interval__period="seconds"
    ).first()
    if task is None or every == OLD_EVERY:
        return
    task.interval, _ = IntervalSchedule.objects.get_or_create(every=every, period="seconds")
    # A tick still waiting by the next one is stale, as the schedule's creation set it.
    task.expire_seconds = min(every, 3600)
    task.save()
    # Tell a running beat (DatabaseScheduler) that its schedule changed.
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0001_initial"),
        ("maintenance", "0002_schedules"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(reap_every_few_seconds, migrations.RunPython.noop)]

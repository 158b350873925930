from typing import Any

from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    """The web's metrics endpoint and scrape-time gauges; the queue check `readyz` runs; the
    schedules' last successes recorded when beat's own tasks finish."""

    name = "apps.observability"
    label = "observability"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from celery.signals import task_success

        from apps.core import health
        from apps.observability import selectors

        health.register_check("queues", selectors.queues_check)
        task_success.connect(_schedule_task_succeeded, weak=False)


# Beat tasks whose success is only "a job was queued": the job's own success is the schedule's
# (apps.jobs.services.job_finish reads the schedule from the run's payload).
_QUEUEING_TASKS = frozenset({"maintenance.tick"})


def _schedule_task_succeeded(sender: Any = None, **kwargs: Any) -> None:
    """A task beat sent (django-celery-beat names its periodic task in the message headers)
    returned: that schedule succeeded now."""
    schedule = getattr(getattr(sender, "request", None), "periodic_task_name", None)
    if not schedule or getattr(sender, "name", "") in _QUEUEING_TASKS:
        return
    from apps.jobs.services import schedule_success_record

    schedule_success_record(name=str(schedule))

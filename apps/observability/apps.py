from typing import Any

from django.apps import AppConfig


class ObservabilityConfig(AppConfig):
    """The web's metrics endpoint and scrape-time gauges; the queue check `readyz` runs; the
    schedules' last successes recorded when beat's own tasks finish."""

    name = "apps.observability"
    label = "observability"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from celery.signals import task_postrun, task_success

        from apps.core import health
        from apps.observability import selectors

        health.register_check("queues", selectors.queues_check)
        task_success.connect(_schedule_task_succeeded, weak=False)
        task_postrun.connect(_schedule_task_ran, weak=False)


# The schedule each beat task's success counts for, held here rather than read from the message
# (django-celery-beat's `periodic_task_name` header names whatever row an admin created, which
# would give the metric unbounded, forgeable labels).
# Tasks that do the work themselves: returning is the schedule's success.
_WORKING_TASKS = {
    "jobs.reap": "jobs-reap",
    "infrastructure.bastion_sweep": "bastion-sweep",
    "audit.prune": "audit-prune",
    "audit.seal": "audit-seal",
    "audit.verify": "audit-verify",
    "groupsync.sync_organization": "groupsync-sync",
}
# Tasks that only queue work: a success only when there was nothing to queue (they return how
# many they queued); otherwise the queued work's own success counts (a `dns_reconcile` job's,
# apps.jobs.registry `schedule`; a `groupsync.sync_organization` task's, above).
# `maintenance.tick` is not here: its job kinds record the success (backup, sweepers, vacuum).
_QUEUEING_TASKS = {
    "dns.reconcile_tick": "dns-reconcile",
    "groupsync.sync": "groupsync-sync",
}


def schedule_names() -> set[str]:
    """Every schedule name the metric may carry (beat tasks above, job kinds' schedules)."""
    from apps.jobs import registry

    return set(_WORKING_TASKS.values()) | set(_QUEUEING_TASKS.values()) | registry.schedules()


def _schedule_task_succeeded(sender: Any = None, result: Any = None, **kwargs: Any) -> None:
    """A beat task returned: record the schedule it serves, if its return means success."""
    name = getattr(sender, "name", "")
    schedule = _WORKING_TASKS.get(name)
    if schedule is None and name in _QUEUEING_TASKS and result == 0:
        schedule = _QUEUEING_TASKS[name]
    if not schedule:
        return
    from apps.jobs.services import schedule_success_record

    schedule_success_record(name=schedule)


def _schedule_task_ran(sender: Any = None, **kwargs: Any) -> None:
    """A beat task ended, however: the first time is when its schedule started running here
    (AutoglueScheduleNeverSucceeded measures from it). A task that only queues work counts too:
    the work it queued runs for the same schedule."""
    name = getattr(sender, "name", "")
    schedule = _WORKING_TASKS.get(name) or _QUEUEING_TASKS.get(name)
    if not schedule:
        return
    from apps.jobs.services import schedule_run_record

    schedule_run_record(name=schedule)

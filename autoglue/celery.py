"""The Celery application. Settings come from Django settings under the CELERY_ prefix."""

import os
from typing import Any

from celery import Celery, signals

from apps.core import metrics_process
from autoglue.tracing import connect_celery_signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autoglue.settings")


def guard_redis_channels_after_close() -> None:
    """Keep a worker alive when Redis goes away while it holds unacknowledged messages.

    On a lost broker connection Celery first `collect()`s the connection, then closes it. With
    kombu's Redis transport (5.7.0 and earlier) a channel can outlive its transport that way: a
    channel waiting in BRPOP and LISTEN fails its first close on the dead socket, `collect()`
    detaches the transport (`transport.client = None`), and the second close, or the late
    acknowledgement of a job that finishes after the reconnect, builds a new Redis client from
    that `None`: `AttributeError: 'NoneType' object has no attribute 'hostname'` (or
    `'client'`). An AttributeError is no connection error, so Celery stops the worker
    ("Unrecoverable error"). The threads pool met it most: it holds SSH jobs unacknowledged for
    minutes while its consumer waits for more.

    A channel whose connection is gone now says so as a connection error, which kombu and
    Celery already handle on those paths (the restore or the acknowledgement is skipped and
    logged). The messages stay in Redis's unacked index, from which kombu restores them after
    the visibility timeout if Redis kept them; Autoglue's record of each run is the database,
    the job reaper resends what is queued there, and a duplicate delivery cannot claim a run
    (docs/jobs.md "Recovery").
    """
    import redis
    from kombu.transport import redis as kombu_redis

    original = kombu_redis.Channel._get_pool
    if getattr(original, "autoglue_guard", False):
        return

    def _get_pool(self: Any, asynchronous: bool = False) -> Any:
        if getattr(self.connection, "client", None) is None:
            raise redis.exceptions.ConnectionError("the channel's broker connection is closed")
        return original(self, asynchronous)

    _get_pool.autoglue_guard = True  # type: ignore[attr-defined]
    kombu_redis.Channel._get_pool = _get_pool  # type: ignore[method-assign]  # the shim


guard_redis_channels_after_close()


# Metrics (apps.core.metrics_process). Connected before the app exists, so the first runs
# before Celery's Django fix-up (its own `import_modules` receiver) sets Django up and imports
# the tasks and the metric objects: a worker's or beat's sample folder must be ready by then,
# and before the pool forks.
@signals.import_modules.connect
def _metrics_role_start(**kwargs: Any) -> None:
    metrics_process.celery_role_start()


@signals.worker_process_init.connect
def _metrics_child_start(**kwargs: Any) -> None:
    from apps.jobs import registry

    metrics_process.celery_child_start()
    registry.prime_counters()


@signals.worker_process_shutdown.connect
def _metrics_child_end(**kwargs: Any) -> None:
    metrics_process.celery_child_end()


@signals.worker_ready.connect
def _worker_ready(sender: Any = None, **kwargs: Any) -> None:
    """Serve the worker's metrics, and say which queues it consumes (readyz, the metrics)."""
    from apps.jobs import broker, registry

    registry.prime_counters()  # the main process runs jobs itself with the threads pool
    metrics_process.serve("worker")
    queues = sorted(sender.app.amqp.queues.consume_from) if sender is not None else []
    if queues:
        broker.start_consumer_heartbeat(queues=queues, hostname=sender.hostname)


@signals.beat_init.connect
def _metrics_beat_start(**kwargs: Any) -> None:
    metrics_process.serve("beat")


app = Celery("autoglue")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
connect_celery_signals()

import autoglue.liveness  # noqa: E402, F401 - connects the worker and beat liveness signals

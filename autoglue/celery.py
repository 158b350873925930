"""The Celery application. Settings come from Django settings under the CELERY_ prefix."""

import logging
import os
from typing import Any

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autoglue.settings")

logger = logging.getLogger(__name__)


def guard_redis_restore_after_close() -> None:
    """Keep a worker alive when Redis goes away while it holds unacknowledged messages.

    On a lost broker connection Celery first `collect()`s the connection, then closes it. With
    kombu's Redis transport (5.7.0 and earlier), a channel that was waiting in BRPOP and
    LISTEN fails the first close on the dead socket, `collect()` then detaches the transport
    from its connection (`transport.client = None`), and the second close tries to put the
    unacknowledged messages back through a new client built from that `None`:
    `AttributeError: 'NoneType' object has no attribute 'hostname'`. It is no connection error,
    so Celery stops the worker ("Unrecoverable error"). The threads pool met it most: it holds
    unacknowledged SSH jobs for minutes while its consumer waits for more.

    Nothing can be restored through a closed connection anyway. The messages stay in Redis's
    unacked index, from which kombu restores them after the visibility timeout, if Redis kept
    them; Autoglue's record of each run is the database, and the job reaper resends what is
    queued there (docs/jobs.md "Recovery"); a duplicate delivery cannot claim a run.
    """
    from kombu.transport import redis as kombu_redis

    original = kombu_redis.QoS.restore_unacked
    if getattr(original, "autoglue_guard", False):
        return

    def restore_unacked(self: Any, client: Any = None) -> Any:
        transport = getattr(self.channel, "connection", None)
        if client is None and getattr(transport, "client", None) is None:
            logger.warning(
                "%d unacknowledged message(s) left to the broker: the connection is closed",
                len(self._delivered),
            )
            return None
        return original(self, client)

    restore_unacked.autoglue_guard = True  # type: ignore[attr-defined]
    kombu_redis.QoS.restore_unacked = restore_unacked  # type: ignore[method-assign]  # the shim


guard_redis_restore_after_close()

app = Celery("autoglue")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

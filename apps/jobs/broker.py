"""Noticing a broker that came back empty.

Redis without persistence (the compose file's, a pod without a volume) loses every queued
message when it restarts, and so does a flushed one. The reaper keeps a marker key in the
broker's Redis: a missing marker means the broker lost its contents since the last tick, and
every queued run's message is sent again at once rather than after JOB_RESEND_AFTER_SECONDS.
Resending too much is harmless (only one delivery can claim a run); missing a loss costs the
resend period, which is why the check runs on every tick.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.utils import timezone

logger = logging.getLogger(__name__)

MARKER_KEY = "autoglue:jobs:broker-marker"
_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def broker_came_back_empty() -> bool:
    """True when the marker was missing (it is set again, so one loss is reported once).

    False when the marker is there, when the broker is not Redis (the embedded folder broker
    keeps its messages on disk), or when Redis cannot be reached: nothing can be resent then,
    and the next tick looks again.
    """
    url = str(getattr(settings, "CELERY_BROKER_URL", "") or "")
    if not url.startswith(_REDIS_SCHEMES):
        return False
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        return bool(client.set(MARKER_KEY, timezone.now().isoformat(), nx=True))
    except redis.RedisError as exc:
        logger.warning("broker marker not checked: %s", type(exc).__name__)
        return False
    finally:
        client.close()

"""Wake-up signals for live log viewers, across every web process.

After a batch of log lines is committed, the writer publishes the newest cursor on a Redis
channel per subject (and per job). A viewer treats a message only as "look again": the lines
themselves are always read from the database, so a lost or duplicated message can delay a line
by one poll interval but never lose or repeat one. Without Redis (the embedded default) there is
no bus and viewers poll.
"""

from __future__ import annotations

import logging
import threading
import uuid

from django.conf import settings

logger = logging.getLogger(__name__)

_PREFIX = "autoglue:joblog:"
_local = threading.local()


def subject_channel(subject_type: str, subject_id: uuid.UUID | str) -> str:
    return f"{_PREFIX}{subject_type}:{subject_id}"


def job_channel(job_id: uuid.UUID | str) -> str:
    return f"{_PREFIX}job:{job_id}"


def enabled() -> bool:
    return bool(getattr(settings, "REDIS_URL", ""))


def _client():  # type: ignore[no-untyped-def]
    client = getattr(_local, "client", None)
    if client is None:
        import redis

        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2
        )
        _local.client = client
    return client


def publish(channels: list[str], message: str) -> None:
    """Best effort: a viewer that misses this finds the lines on its next poll."""
    if not enabled():
        return
    try:
        pipe = _client().pipeline(transaction=False)
        for channel in channels:
            pipe.publish(channel, message)
        pipe.execute()
    except Exception:  # noqa: BLE001 - a dead bus must never fail a job
        logger.warning("job log notification not published", exc_info=True)


def async_client():  # type: ignore[no-untyped-def]
    """A new asyncio Redis client for one viewer (closed by the caller)."""
    import redis.asyncio

    return redis.asyncio.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2)

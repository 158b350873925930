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
import threading
import time
from typing import Any

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


# --- what the broker holds, and who consumes it (metrics, readyz, the console) -----------------

# Each worker notes, every CONSUMER_BEAT_SECONDS, the queues it consumes: field
# "<queue> <worker hostname>" of this hash, value the time. A field older than
# CONSUMER_STALE_SECONDS is a worker that went away.
CONSUMERS_KEY = "autoglue:jobs:consumers"
CONSUMER_BEAT_SECONDS = 10.0
CONSUMER_STALE_SECONDS = 35.0
# A worker silent this long is forgotten (its field removed from the hash).
CONSUMER_FORGET_SECONDS = 3600.0
# kombu's Redis transport keeps a queue's messages in the list named after it, and those sent
# with a priority in lists with these suffixes (its default priority steps).
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def _redis_client() -> Any:
    url = str(getattr(settings, "CELERY_BROKER_URL", "") or "")
    if not url.startswith(_REDIS_SCHEMES):
        return None
    import redis

    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


def queue_lengths(queues: list[str]) -> dict[str, int] | None:
    """Messages waiting in the broker per queue, in one round trip; None when the broker is
    not Redis (the folder broker of the embedded default) or does not answer."""
    client = _redis_client()
    if client is None:
        return None
    import redis

    try:
        pipe = client.pipeline(transaction=False)
        for queue in queues:
            for suffix in _PRIORITY_SUFFIXES:
                pipe.llen(f"{queue}{suffix}")
        counts = pipe.execute()
    except redis.RedisError:
        return None
    finally:
        client.close()
    step = len(_PRIORITY_SUFFIXES)
    return {queue: sum(counts[i * step : (i + 1) * step]) for i, queue in enumerate(queues)}


def consumer_beat(*, queues: list[str], hostname: str) -> None:
    """Say that the worker `hostname` consumes `queues` (its heartbeat thread calls this)."""
    client = _redis_client()
    if client is None:
        return
    try:
        now = _redis_now(client)
        client.hset(CONSUMERS_KEY, mapping={f"{queue} {hostname}": now for queue in queues})
        client.expire(CONSUMERS_KEY, int(CONSUMER_STALE_SECONDS * 10))
    finally:
        client.close()


def queue_consumers() -> dict[str, int] | None:
    """Workers seen consuming each queue within CONSUMER_STALE_SECONDS; None when the broker
    is not Redis or does not answer (then nobody can tell)."""
    client = _redis_client()
    if client is None:
        return None
    import redis

    try:
        fields = client.hgetall(CONSUMERS_KEY)
        now = _redis_now(client)
        # Workers that are gone for good (renamed pods, scaled down) are dropped, so the hash
        # does not grow with every worker name ever seen; recently quiet ones still count 0.
        gone = [f for f, seen in fields.items() if float(seen) < now - CONSUMER_FORGET_SECONDS]
        if gone:
            client.hdel(CONSUMERS_KEY, *gone)
    except redis.RedisError:
        return None
    finally:
        client.close()
    fresh_after = now - CONSUMER_STALE_SECONDS
    counts: dict[str, int] = {}
    for field, seen in fields.items():
        queue = field.decode().partition(" ")[0]
        counts.setdefault(queue, 0)
        if float(seen) >= fresh_after:
            counts[queue] += 1
    return counts


def _redis_now(client: Any) -> float:
    """Redis's clock, not this machine's: workers and web pods whose clocks differ still agree
    on how old a heartbeat is."""
    seconds, micros = client.time()
    return float(seconds) + micros / 1_000_000


def start_consumer_heartbeat(*, queues: list[str], hostname: str) -> threading.Thread:
    """A daemon thread that calls `consumer_beat` every CONSUMER_BEAT_SECONDS."""

    def beat() -> None:
        while True:
            try:
                consumer_beat(queues=queues, hostname=hostname)
            except Exception as exc:  # noqa: BLE001 - a Redis blip: try again next beat
                logger.warning("consumer heartbeat failed: %s", type(exc).__name__)
            time.sleep(CONSUMER_BEAT_SECONDS)

    thread = threading.Thread(target=beat, name="queue-consumer-heartbeat", daemon=True)
    thread.start()
    return thread

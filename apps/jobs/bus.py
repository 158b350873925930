"""Wake-up signals for live log viewers, across every web process.

After a batch of log lines is committed, the writer publishes the newest cursor on a Redis
channel per subject (and per job); a job's end is announced the same way. A viewer treats a
message only as "look again": the lines themselves are always read from the database, so a lost
or duplicated message can delay a line but never lose or repeat one.

Each web process holds ONE subscription (a pattern over every log channel, `Hub`), whatever the
number of viewers, and fans each message out to the viewers of its channel in memory. The hub
also wakes every viewer now and then (`JOB_LOG_STREAM_RECHECK_SECONDS`) so a message lost on the
way costs at most that long, and every `JOB_LOG_STREAM_POLL_SECONDS` while Redis is unreachable
(or absent: the embedded default has no bus), so viewers keep following by polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

_PREFIX = "autoglue:joblog:"
# The name every hub connection carries in Redis (CLIENT LIST), with its host and pid.
HUB_CLIENT_NAME = "autoglue-logbus"
_client_lock = threading.Lock()
# Connections of the process-wide client (publishing, stream reads of the hub's state).
SYNC_POOL_SIZE = 10
_sync_client: Any = None


def subject_channel(subject_type: str, subject_id: uuid.UUID | str) -> str:
    return f"{_PREFIX}{subject_type}:{subject_id}"


def job_channel(job_id: uuid.UUID | str) -> str:
    return f"{_PREFIX}job:{job_id}"


def enabled() -> bool:
    return bool(getattr(settings, "REDIS_URL", ""))


def sync_client() -> Any:
    """The process's synchronous Redis client (thread-safe: one connection pool for every
    thread, so a thread per request does not mean a connection per request)."""
    global _sync_client
    with _client_lock:
        if _sync_client is None:
            import redis

            # Blocking: a burst of threads (a thread per request under ASGI) waits for a free
            # connection instead of failing past the pool's size.
            pool = redis.BlockingConnectionPool.from_url(
                settings.REDIS_URL,
                max_connections=SYNC_POOL_SIZE,
                timeout=2,
                socket_timeout=2,
                socket_connect_timeout=2,
            )
            _sync_client = redis.Redis(connection_pool=pool)
        return _sync_client


def publish(channels: list[str], message: str) -> None:
    """Best effort: a viewer that misses this finds the lines at the hub's next recheck."""
    if not enabled():
        return
    try:
        pipe = sync_client().pipeline(transaction=False)
        for channel in channels:
            pipe.publish(channel, message)
        pipe.execute()
    except Exception:  # noqa: BLE001 - a dead bus must never fail a job
        logger.warning("job log notification not published", exc_info=True)


def async_client() -> Any:
    """A new asyncio Redis client (closed by the caller)."""
    import redis.asyncio

    return redis.asyncio.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2
    )


class Hub:
    """The one subscription of this process (of its event loop), shared by all its viewers.

    A viewer `watch()`es a channel and gets an `asyncio.Event`, set whenever the channel may
    have news; it clears the event before each read, so a message that arrives during a read
    is never lost. The reader task runs while anyone watches and closes its connection when the
    last viewer leaves."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.connected = False
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._generations: dict[str, int] = {}
        self._sequence = 0
        self._task: asyncio.Task[None] | None = None
        self._commands: Any = None

    @property
    def commands(self) -> Any:
        """An asyncio Redis client for short commands, shared by every viewer of the process
        (a connection is busy only for the length of a command)."""
        if self._commands is None:
            self._commands = async_client()
        return self._commands

    def watch(self, channel: str) -> asyncio.Event:
        event = asyncio.Event()
        if channel not in self._waiters:
            # Nothing read for this channel before now may stand in for a read after it.
            self._bump(channel)
        self._waiters.setdefault(channel, set()).add(event)
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._run())
        return event

    def unwatch(self, channel: str, event: asyncio.Event) -> None:
        waiting = self._waiters.get(channel)
        if waiting is not None:
            waiting.discard(event)
            if not waiting:
                del self._waiters[channel]
                self._generations.pop(channel, None)

    @property
    def viewers(self) -> int:
        return sum(len(events) for events in self._waiters.values())

    def generation(self, channel: str) -> int:
        """The sequence number of the channel's latest wake-up (or first watch): a read started
        at or after it sees every line announced by then."""
        return self._generations.get(channel, 0)

    def _bump(self, channel: str) -> None:
        self._sequence += 1
        self._generations[channel] = self._sequence

    def _wake(self, channel: str) -> None:
        waiting = self._waiters.get(channel)
        if not waiting:
            return
        self._bump(channel)
        for event in waiting:
            event.set()

    def _wake_all(self) -> None:
        for channel in self._waiters:
            self._wake(channel)

    async def _run(self) -> None:
        poll = float(settings.JOB_LOG_STREAM_POLL_SECONDS)
        while self._waiters:
            if enabled():
                await self._follow()
            if self._waiters:
                # No bus, or the bus is down: every viewer looks again each poll interval.
                self._wake_all()
                await asyncio.sleep(poll)

    async def _follow(self) -> None:
        """Follow the bus until it fails or nobody watches any more."""
        recheck = float(settings.JOB_LOG_STREAM_RECHECK_SECONDS)
        client = async_client()
        pubsub = client.pubsub()
        try:
            await client.client_setname(f"{HUB_CLIENT_NAME}:{socket.gethostname()}:{os.getpid()}")
            await pubsub.psubscribe(_PREFIX + "*")
            if not self.connected:
                logger.info("job log bus: subscribed")
            self.connected = True
            # Messages sent while we were not subscribed are lost: everyone looks again.
            self._wake_all()
            next_recheck = time.monotonic() + recheck
            while self._waiters:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and message.get("type") == "pmessage":
                    channel = message["channel"]
                    self._wake(channel.decode() if isinstance(channel, bytes) else channel)
                if time.monotonic() >= next_recheck:
                    self._wake_all()
                    next_recheck = time.monotonic() + recheck
        except Exception:  # noqa: BLE001 - viewers fall back to polling until it is back
            if self.connected:
                logger.warning("job log bus lost, viewers poll", exc_info=True)
            self.connected = False
        finally:
            for resource in (pubsub, client):
                with contextlib.suppress(Exception):  # closing a connection that is gone
                    await resource.aclose()


_hub: Hub | None = None


def hub() -> Hub:
    """This process's hub (one per event loop: uvicorn runs one loop per worker process)."""
    global _hub
    loop = asyncio.get_running_loop()
    if _hub is None or _hub.loop is not loop:
        _hub = Hub(loop)
    return _hub

"""How many live log streams a principal (a user, or an org key) and an organization may hold
open at once: `JOB_LOG_STREAMS_PER_PRINCIPAL` and `JOB_LOG_STREAMS_PER_ORG`.

Counted across every web process in Redis: one sorted set per principal and per organization,
each open stream a member scored with the time its slot lapses. A stream renews its slot while
it runs (`renew_soon`, every third of `SLOT_SECONDS`) and removes it when it ends, however it
ends (`release_soon`: both batched into one pipeline per process);
a process that dies without removing its slots loses them after `SLOT_SECONDS`, so a crash can
never leak slots for good. Taking a slot checks and adds in one Lua script, so two requests
cannot both take the last one. Without Redis (the embedded default, one machine) the slots are
kept in the process, and lapse the same way: a stream whose response was never run (its client
left while the view was still working) cannot hold one for good.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from apps.jobs import bus

logger = logging.getLogger(__name__)

# Long enough that a renewal missed under load does not drop a live stream's slot, short enough
# that slots of a crashed process come back within a minute.
SLOT_SECONDS = 60
_KEY_PREFIX = "autoglue:logstreams:"

# KEYS: the sets to count in; ARGV: slot id, lapse seconds, then one cap per key.
# Returns 0 when the slot was taken, otherwise the (1-based) index of the key that is full.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) >= tonumber(ARGV[2 + i]) then
    return i
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[1])
  redis.call('EXPIRE', key, ttl + 1)
end
return 0
"""
# Renews the slot (adds it back if it lapsed while a stall kept the stream from renewing).
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl = tonumber(ARGV[2])
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now + ttl, ARGV[1])
  redis.call('EXPIRE', key, ttl + 1)
end
return 0
"""


class StreamsExhausted(Exception):
    """Every slot of the principal (or of the organization) is taken."""

    def __init__(self, scope: str, cap: int) -> None:
        super().__init__(scope)
        self.scope = scope
        self.cap = cap


class SlotsUnavailable(Exception):
    """Redis does not answer, so open streams cannot be counted."""


@dataclass
class Slot:
    """One open stream's place in its principal's and its organization's counts."""

    keys: list[str]
    token: str = field(default_factory=lambda: uuid.uuid4().hex)


_local_lock = threading.Lock()
# Without Redis: key -> {slot token: when it lapses (time.monotonic())}.
_local_slots: dict[str, dict[str, float]] = {}


def _limits(principal: str, organization_id: uuid.UUID | None) -> list[tuple[str, str, int]]:
    limits = [("principal", f"{_KEY_PREFIX}p:{principal}", settings.JOB_LOG_STREAMS_PER_PRINCIPAL)]
    if organization_id is not None:
        limits.append(
            ("organization", f"{_KEY_PREFIX}o:{organization_id}", settings.JOB_LOG_STREAMS_PER_ORG)
        )
    return [(scope, key, int(cap)) for scope, key, cap in limits]


def acquire(*, principal: str, organization_id: uuid.UUID | None) -> Slot:
    """Take a slot or raise `StreamsExhausted` / `SlotsUnavailable`. Synchronous: called by the
    view before the stream starts."""
    limits = _limits(principal, organization_id)
    slot = Slot(keys=[key for _, key, _ in limits])
    if not bus.enabled():
        now = time.monotonic()
        with _local_lock:
            for scope, key, cap in limits:
                held = _local_slots.get(key, {})
                for token in [token for token, lapse in held.items() if lapse <= now]:
                    del held[token]
                if len(held) >= cap:
                    raise StreamsExhausted(scope, cap)
            for key in slot.keys:
                _local_slots.setdefault(key, {})[slot.token] = now + SLOT_SECONDS
        return slot
    try:
        full = bus.sync_client().eval(
            _ACQUIRE,
            len(slot.keys),
            *slot.keys,
            slot.token,
            SLOT_SECONDS,
            *[cap for _, _, cap in limits],
        )
    except Exception as exc:
        raise SlotsUnavailable(str(exc)) from exc
    if full:
        scope, _, cap = limits[int(full) - 1]
        raise StreamsExhausted(scope, cap)
    return slot


class _Updates:
    """Renewals and releases of this process's slots, sent in one pipeline whenever there are
    any (hundreds of viewers leaving at once cost one round trip, not hundreds of connections).
    Fire and forget: a stream that ends never waits on Redis, and an update that is lost only
    makes a slot lapse at its time."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: Any) -> None:
        self.loop, self.client = loop, client
        self._pending: list[tuple[bool, Slot]] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, renew: bool, slot: Slot) -> None:
        self._pending.append((renew, slot))
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._send())

    async def _send(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            pipe = self.client.pipeline(transaction=False)
            for renew, slot in batch:
                if renew:
                    pipe.eval(_RENEW, len(slot.keys), *slot.keys, slot.token, SLOT_SECONDS)
                else:
                    for key in slot.keys:
                        pipe.zrem(key, slot.token)
            try:
                await asyncio.wait_for(pipe.execute(), 5)
            except Exception:  # noqa: BLE001 - the slots lapse at their time instead
                logger.warning("log stream slots: %d updates not sent", len(batch), exc_info=True)


_updates: _Updates | None = None


def _queue(client: Any) -> _Updates:
    global _updates
    loop = asyncio.get_running_loop()
    if _updates is None or _updates.loop is not loop:
        _updates = _Updates(loop, client)
    return _updates


def renew_soon(slot: Slot, client: Any) -> None:
    """Push the slot's lapse time on (called by the stream every third of SLOT_SECONDS)."""
    if bus.enabled():
        _queue(client).add(True, slot)
        return
    lapse = time.monotonic() + SLOT_SECONDS
    with _local_lock:
        for key in slot.keys:
            _local_slots.setdefault(key, {})[slot.token] = lapse


def release_soon(slot: Slot, client: Any) -> None:
    if bus.enabled():
        _queue(client).add(False, slot)
    else:
        release_local(slot)


def release_local(slot: Slot) -> None:
    """Give a slot kept in the process back; again, or after it lapsed, is harmless."""
    with _local_lock:
        for key in slot.keys:
            held = _local_slots.get(key)
            if held is not None:
                held.pop(slot.token, None)
                if not held:
                    del _local_slots[key]


def release_abandoned(slot: Slot) -> None:
    """For a stream's response that is closed or collected, whether or not it ever ran. Kept in
    the process, the slot is given back at once; in Redis it lapses within SLOT_SECONDS (no
    round trip from a garbage collector's thread)."""
    if not bus.enabled():
        release_local(slot)


def release_sync(slot: Slot) -> None:
    """For the synchronous (WSGI) stream."""
    if not bus.enabled():
        release_local(slot)
        return
    pipe = bus.sync_client().pipeline(transaction=False)
    for key in slot.keys:
        pipe.zrem(key, slot.token)
    pipe.execute()

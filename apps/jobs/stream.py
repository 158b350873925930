"""Server-Sent Events for job logs: the backlog after a cursor, then new lines as they are
written, then an `end` event when the job is over.

Each event's `id:` is the line's cursor, so a client that reconnects with `Last-Event-ID` (every
EventSource does) resumes exactly after the last line it saw. Lines are always read from the
database; Redis pub/sub only wakes the stream (see apps.jobs.bus), so this is correct with any
number of web processes and never repeats or skips a line.

Under ASGI (the supported deployment: gunicorn with uvicorn workers) a waiting viewer costs no
thread, no database connection and no Redis connection:
- the request's own connections (authentication, the subject's lookup, the rate limiter's
  Redis) are closed and its thread let go before the first byte is sent;
- reads run on a few threads per process (`JOB_LOG_STREAM_READ_THREADS`), which close their
  connection as soon as no read is queued, and viewers of the same log at the same cursor share
  one read;
- one Redis subscription per process wakes every viewer (`bus.Hub`).
Django cancels the stream when uvicorn reports the client gone, so its slot (apps.jobs.
stream_slots) and its wake-up are given back at once.

Under WSGI the same loop runs synchronously for at most JOB_LOG_STREAM_WSGI_MAX_SECONDS, then
ends; the client reconnects and resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import re
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from asgiref.sync import SyncToAsync, sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import InterfaceError, OperationalError, connection, connections
from django.http import HttpRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase

from apps.core import db_pool, metrics
from apps.core.api.errors import error_response
from apps.core.tenancy import OrgKeyPrincipal
from apps.jobs import bus, stream_slots
from apps.jobs.selectors import LogScope, job_logs_page

logger = logging.getLogger(__name__)

_BATCH = 500
# Seconds a client waits before asking again when the caps are reached, or Redis is down.
_RETRY_FULL = 10
_RETRY_UNAVAILABLE = 5


def _page(scope: LogScope, after: int) -> dict[str, Any]:
    """One read; a connection that died is closed and the read tried once more. A pool with no
    free connection is not retried: the read already waited the pool's timeout, and a second
    wait would hold this read thread (and the viewers queued behind it) as long again."""
    try:
        return job_logs_page(scope=scope, after=after, limit=_BATCH)
    except (OperationalError, InterfaceError) as exc:
        if db_pool.is_pool_timeout(exc):
            raise
        connection.close()
        return job_logs_page(scope=scope, after=after, limit=_BATCH)


def _close_idle_connections() -> None:
    """Close this thread's database connections, unless a transaction is open on one (a test's
    wrapping transaction; never the case for a request served by the web role)."""
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close()


def _close_request_connections() -> None:
    """What the request opened: its database connections. (Its cache's Redis connection went
    back to the process's shared pool when its last command ended: apps.core.cache.)"""
    _close_idle_connections()


def _release_request_thread() -> None:
    """Let the request's own thread go while the stream runs. Under ASGI, asgiref gives each
    request a single-thread executor for its sync code (the view, the middleware) and shuts it
    down only when the request ends, an hour later for a stream; nothing else runs there now.
    Should Django need it again (the `request_finished` handlers), asgiref makes a new one."""
    context = SyncToAsync.thread_sensitive_context.get(None)
    executors = getattr(SyncToAsync, "context_to_thread_executor", None)
    if context is None or executors is None:
        return
    executor = executors.pop(context, None)
    if executor is not None:
        executor.shutdown(wait=False)


class _ReadPool:
    """The threads that run every stream read of this process. A thread keeps its database
    connection only while reads are queued and closes it as soon as it runs out of work, so the
    process holds at most `size` connections for its streams, and none while they wait."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put((loop, future, fn, args))
        with self._lock:
            self._threads = [thread for thread in self._threads if thread.is_alive()]
            if len(self._threads) < self.size:
                thread = threading.Thread(target=self._work, name="log-stream-read", daemon=True)
                thread.start()
                self._threads.append(thread)
        return future

    def _work(self) -> None:
        while True:
            loop, future, fn, args = self._queue.get()
            try:
                if future.cancelled():
                    continue
                try:
                    result, error = fn(*args), None
                except Exception as exc:  # noqa: BLE001 - handed to the waiting stream
                    result, error = None, exc
                with contextlib.suppress(RuntimeError):  # the loop has closed
                    loop.call_soon_threadsafe(_settle, future, result, error)
            finally:
                if self._queue.empty():
                    _close_idle_connections()


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


_pool: _ReadPool | None = None
_pool_lock = threading.Lock()
# (subject type, subject, organization, job, cursor) -> the read in flight. Per process; only
# touched from the event loop.
_in_flight: dict[tuple[Any, ...], tuple[int, asyncio.Future[Any]]] = {}


def _read_pool() -> _ReadPool:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = _ReadPool(int(settings.JOB_LOG_STREAM_READ_THREADS))
        return _pool


async def _read(scope: LogScope, cursor: int, generation: int) -> dict[str, Any]:
    """The page after `cursor`, shared by every viewer of the same lines that asks meanwhile
    (a line written wakes all of them at once). A viewer joins a read only if it was started
    at or after the wake-up the viewer has seen (`generation`), so a read begun before a line
    was announced never stands in for one after. `is_done` is the route's rule for its subject
    type, so the key names everything the page depends on."""
    key = (scope.subject_type, scope.subject_id, scope.organization_id, scope.job_id, cursor)
    shared = _in_flight.get(key)
    if (
        shared is None
        or shared[0] < generation
        or shared[1].get_loop() is not asyncio.get_running_loop()
    ):
        future = _read_pool().submit(_page, scope, cursor)
        _in_flight[key] = (generation, future)

        def forget(done: asyncio.Future[Any]) -> None:
            current = _in_flight.get(key)
            if current is not None and current[1] is done:
                del _in_flight[key]
            if not done.cancelled():
                done.exception()  # retrieved, even if every viewer left meanwhile

        future.add_done_callback(forget)
    else:
        future = shared[1]
    # One viewer leaving must not cancel the read the others wait for.
    return await asyncio.shield(future)


def _events(page: dict[str, Any]) -> str:
    """The page as SSE text, encoded once however many viewers share the page."""
    encoded = page.get("_sse")
    if encoded is None:
        encoded = page["_sse"] = _encode(page)
    return encoded


def _encode(page: dict[str, Any]) -> str:
    parts = [
        f"id: {item['id']}\nevent: log\ndata: {json.dumps(item, separators=(',', ':'))}\n\n"
        for item in page["items"]
    ]
    if page["done"]:
        parts.append(f"event: end\ndata: {json.dumps({'cursor': page['next_cursor']})}\n\n")
    return "".join(parts)


def _channel(scope: LogScope) -> str:
    if scope.job_id is not None:
        return bus.job_channel(scope.job_id)
    return bus.subject_channel(scope.subject_type, str(scope.subject_id))


async def _wait(wake: asyncio.Event, timeout: float) -> None:
    if timeout > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout)


# Sent before the stream closes when the viewer may no longer read these lines (key revoked or
# expired, user disabled, role demoted). Not `end`: the job has not ended. EventSource then
# reconnects with Last-Event-ID and the new request is authorised from scratch.
_DENIED = (
    "event: denied\ndata: "
    + json.dumps(
        {"code": "stream_unauthorized", "message": "access to these logs has changed; reconnect"},
        separators=(",", ":"),
    )
    + "\n\n"
)


def _allowed(scope: LogScope) -> bool:
    """`scope.still_allowed()`, on a stream thread; an error (the database down) ends the
    stream too, as a read would, rather than let it run unchecked."""
    if scope.still_allowed is None:
        return True
    try:
        return scope.still_allowed()
    except Exception:  # noqa: BLE001 - the client reconnects and is authorised again
        logger.warning("log stream: authorisation recheck failed", exc_info=True)
        return False


async def _async_stream(
    scope: LogScope, after: int, slot: stream_slots.Slot | None
) -> AsyncIterator[str]:
    hub = bus.hub()
    channel = _channel(scope)
    wake = hub.watch(channel)
    metrics.log_streams_open.inc()
    try:
        # The view's connection would otherwise stay open on this request's thread until the
        # stream ends (Django closes it only when the response is closed).
        await sync_to_async(_close_request_connections)()
        _release_request_thread()
        yield "retry: 2000\n\n"
        keepalive = float(settings.JOB_LOG_STREAM_KEEPALIVE_SECONDS)
        renew_every = stream_slots.SLOT_SECONDS / 3
        reauthorize = float(settings.JOB_LOG_STREAM_REAUTHORIZE_SECONDS)
        started = time.monotonic()
        ends_at = started + float(settings.JOB_LOG_STREAM_MAX_SECONDS)
        cursor, last_sent, renewed, checked = after, started, started, started
        while time.monotonic() < ends_at:
            if scope.still_allowed is not None and time.monotonic() - checked >= reauthorize:
                # On a read thread, which holds no connection once it is idle again.
                if not await _read_pool().submit(_allowed, scope):
                    yield _DENIED
                    return
                checked = time.monotonic()
            wake.clear()  # before the read: a line written during it wakes us again
            page = await _read(scope, cursor, hub.generation(channel))
            if page["items"] or page["done"]:
                yield _events(page)
                last_sent = time.monotonic()
            cursor = page["next_cursor"]
            if page["done"]:
                return
            if len(page["items"]) == _BATCH:
                continue
            now = time.monotonic()
            await _wait(
                wake,
                min(keepalive - (now - last_sent), ends_at - now, checked + reauthorize - now),
            )
            now = time.monotonic()
            if now - last_sent >= keepalive:
                yield ": keepalive\n\n"
                last_sent = now
            if slot is not None and now - renewed >= renew_every:
                renewed = now
                stream_slots.renew_soon(slot, hub.commands)
    finally:
        metrics.log_streams_open.dec()
        hub.unwatch(channel, wake)
        if slot is not None:
            stream_slots.release_soon(slot, hub.commands)


def _sync_stream(scope: LogScope, after: int, slot: stream_slots.Slot | None) -> Iterator[str]:
    metrics.log_streams_open.inc()
    try:
        yield "retry: 2000\n\n"
        reauthorize = float(settings.JOB_LOG_STREAM_REAUTHORIZE_SECONDS)
        checked = time.monotonic()
        ends_at = checked + float(settings.JOB_LOG_STREAM_WSGI_MAX_SECONDS)
        cursor = after
        while True:
            if time.monotonic() - checked >= reauthorize:
                if not _allowed(scope):
                    yield _DENIED
                    return
                checked = time.monotonic()
            page = _page(scope, cursor)
            if page["items"] or page["done"]:
                yield _events(page)
            cursor = page["next_cursor"]
            if page["done"] or time.monotonic() >= ends_at:
                return
            if len(page["items"]) < _BATCH:
                _close_idle_connections()  # not held while it sleeps
                time.sleep(float(settings.JOB_LOG_STREAM_POLL_SECONDS))
    finally:
        metrics.log_streams_open.dec()
        if slot is not None:
            try:
                stream_slots.release_sync(slot)
            except Exception:  # noqa: BLE001 - it lapses after SLOT_SECONDS
                logger.warning("log stream: slot not released", exc_info=True)


def resume_cursor(request: HttpRequest, after: int) -> int:
    """`Last-Event-ID` (sent by a reconnecting EventSource) wins over `?after=`."""
    raw = request.headers.get("Last-Event-ID", "").strip()
    if re.fullmatch(r"[0-9]{1,18}", raw):
        return int(raw)
    return after


def _principal(request: Any) -> str:
    """Whose streams count together: an org key's own, otherwise the person's (whatever key or
    session they use, so minting keys does not open more)."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, OrgKeyPrincipal):
        return f"key:{auth.key_id}"
    return f"user:{getattr(request.user, 'pk', None)}"


def sse_response(request: HttpRequest, *, scope: LogScope, after: int) -> HttpResponseBase:
    """The stream, or 429 `too_many_streams` when the principal's or the organization's cap is
    reached, or 503 `log_stream_unavailable` when Redis cannot count them (the paged route
    still answers)."""
    cursor = resume_cursor(request, after)
    try:
        slot = stream_slots.acquire(
            principal=_principal(request), organization_id=scope.organization_id
        )
    except stream_slots.StreamsExhausted as full:
        response = error_response(
            429,
            "too_many_streams",
            f"at most {full.cap} live log streams may be open per {full.scope}; "
            "close one or retry later",
        )
        response["Retry-After"] = str(_RETRY_FULL)
        return response
    except stream_slots.SlotsUnavailable:
        logger.warning("log stream refused: Redis unavailable", exc_info=True)
        response = error_response(
            503, "log_stream_unavailable", "live logs are unavailable; retry later"
        )
        response["Retry-After"] = str(_RETRY_UNAVAILABLE)
        return response
    underlying = getattr(request, "_request", request)
    content: Any = (
        _async_stream(scope, cursor, slot)
        if isinstance(underlying, ASGIRequest)
        else _sync_stream(scope, cursor, slot)
    )
    stream = StreamingHttpResponse(content, content_type="text/event-stream")
    # The stream gives its slot back when it ends, but it may never start: Django drops the
    # response of a client that left while the view ran. Then the slot goes with the response.
    weakref.finalize(stream, stream_slots.release_abandoned, slot)
    stream["Cache-Control"] = "no-cache, no-store"
    # Proxies (nginx) must pass each event on at once.
    stream["X-Accel-Buffering"] = "no"
    return stream

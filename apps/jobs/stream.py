"""Server-Sent Events for job logs: the backlog after a cursor, then new lines as they are
written, then an `end` event when the job is over.

Each event's `id:` is the line's cursor, so a client that reconnects with `Last-Event-ID` (every
EventSource does) resumes exactly after the last line it saw. Lines are always read from the
database; Redis pub/sub only wakes the stream early (see apps.jobs.bus), so this is correct
with any number of web processes and never repeats or skips a line.

Under ASGI (the supported deployment: gunicorn with uvicorn workers) the stream is an async
generator: a viewer holds no thread while it waits, and its database reads run on the shared
thread pool. Under WSGI the same loop runs synchronously for at most
JOB_LOG_STREAM_WSGI_MAX_SECONDS, then ends; the client reconnects and resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.db import InterfaceError, OperationalError, connection
from django.http import HttpRequest, StreamingHttpResponse

from apps.jobs import bus
from apps.jobs.selectors import LogScope, job_logs_page

logger = logging.getLogger(__name__)

_BATCH = 500


def _page(scope: LogScope, after: int) -> dict[str, Any]:
    """One read, on a thread of the shared pool. The thread keeps its connection between reads
    (a handful of threads serve every viewer of the process); a connection that died is closed
    and the read tried once more."""
    try:
        return job_logs_page(scope=scope, after=after, limit=_BATCH)
    except (OperationalError, InterfaceError):
        connection.close()
        return job_logs_page(scope=scope, after=after, limit=_BATCH)


def _events(page: dict[str, Any]) -> str:
    parts = [
        f"id: {item['id']}\nevent: log\ndata: {json.dumps(item, separators=(',', ':'))}\n\n"
        for item in page["items"]
    ]
    if page["done"]:
        parts.append(f"event: end\ndata: {json.dumps({'cursor': page['next_cursor']})}\n\n")
    return "".join(parts)


class _Wakeup:
    """Redis pub/sub for one viewer, or a plain sleep when there is no bus."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.client: Any = None
        self.pubsub: Any = None

    async def open(self) -> None:
        if not bus.enabled():
            return
        try:
            self.client = bus.async_client()
            self.pubsub = self.client.pubsub()
            await self.pubsub.subscribe(self.channel)
        except Exception:  # noqa: BLE001 - without the bus the stream polls
            logger.warning("log stream: no pub/sub, polling", exc_info=True)
            self.pubsub = None

    async def wait(self, poll: float) -> None:
        if self.pubsub is None:
            await asyncio.sleep(poll)
            return
        try:
            # A message only means "look again"; the poll bounds a missed one.
            await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=poll * 5)
        except Exception:  # noqa: BLE001
            logger.warning("log stream: pub/sub lost, polling", exc_info=True)
            self.pubsub = None

    async def close(self) -> None:
        for resource in (self.pubsub, self.client):
            if resource is not None:
                with contextlib.suppress(Exception):
                    await resource.aclose()


async def _async_stream(scope: LogScope, after: int) -> AsyncIterator[str]:
    yield "retry: 2000\n\n"
    wakeup = _Wakeup(
        bus.job_channel(scope.job_id)
        if scope.job_id is not None
        else bus.subject_channel(scope.subject_type, str(scope.subject_id))
    )
    await wakeup.open()
    poll = float(settings.JOB_LOG_STREAM_POLL_SECONDS)
    keepalive = float(settings.JOB_LOG_STREAM_KEEPALIVE_SECONDS)
    ends_at = time.monotonic() + float(settings.JOB_LOG_STREAM_MAX_SECONDS)
    cursor, last_sent = after, time.monotonic()
    read_page = sync_to_async(_page, thread_sensitive=False)
    try:
        while time.monotonic() < ends_at:
            page = await read_page(scope, cursor)
            if page["items"] or page["done"]:
                yield _events(page)
                last_sent = time.monotonic()
            cursor = page["next_cursor"]
            if page["done"]:
                return
            if len(page["items"]) == _BATCH:
                continue
            await wakeup.wait(poll)
            if time.monotonic() - last_sent >= keepalive:
                yield ": keepalive\n\n"
                last_sent = time.monotonic()
    finally:
        await wakeup.close()


def _sync_stream(scope: LogScope, after: int) -> Iterator[str]:
    yield "retry: 2000\n\n"
    ends_at = time.monotonic() + float(settings.JOB_LOG_STREAM_WSGI_MAX_SECONDS)
    cursor = after
    while True:
        page = _page(scope, cursor)
        if page["items"] or page["done"]:
            yield _events(page)
        cursor = page["next_cursor"]
        if page["done"] or time.monotonic() >= ends_at:
            return
        if len(page["items"]) < _BATCH:
            time.sleep(float(settings.JOB_LOG_STREAM_POLL_SECONDS))


def resume_cursor(request: HttpRequest, after: int) -> int:
    """`Last-Event-ID` (sent by a reconnecting EventSource) wins over `?after=`."""
    raw = request.headers.get("Last-Event-ID", "").strip()
    if re.fullmatch(r"[0-9]{1,18}", raw):
        return int(raw)
    return after


def sse_response(request: HttpRequest, *, scope: LogScope, after: int) -> StreamingHttpResponse:
    cursor = resume_cursor(request, after)
    underlying = getattr(request, "_request", request)
    content: Any = (
        _async_stream(scope, cursor)
        if isinstance(underlying, ASGIRequest)
        else _sync_stream(scope, cursor)
    )
    response = StreamingHttpResponse(content, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache, no-store"
    # Proxies (nginx) must pass each event on at once.
    response["X-Accel-Buffering"] = "no"
    return response

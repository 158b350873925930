"""The live stream's shared reads, against the real database, Redis and the process's hub: one
read serves every viewer at the same cursor, but never one begun before the wake-up a viewer
has seen (which could miss the line that woke it)."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import threading
import time

import pytest
from django.test import RequestFactory

from apps.jobs import bus, stream, stream_slots
from apps.jobs.models import JobLog, JobRun
from apps.jobs.selectors import LogScope

pytestmark = pytest.mark.django_db(transaction=True)


def _run_scope(org) -> tuple[JobRun, LogScope]:  # type: ignore[no-untyped-def]
    job = JobRun.objects.create(
        kind="bootstrap_bastion", queue="ssh", organization=org, status=JobRun.Status.RUNNING
    )
    scope = LogScope(
        subject_type="server",
        subject_id=None,
        organization_id=org.pk,
        is_done=lambda: False,
        job_id=job.pk,
    )
    return job, scope


def _line(job: JobRun, text: str) -> None:
    JobLog.objects.create(job=job, organization_id=job.organization_id, stream="stdout", chunk=text)


def test_viewers_at_one_cursor_share_a_read_but_not_one_begun_before_their_wake_up(
    org, monkeypatch
):
    job, scope = _run_scope(org)
    _line(job, "first\n")
    reads: list[int] = []
    held = threading.Event()
    real_page = stream._page

    def counted(read_scope: LogScope, after: int) -> dict:
        reads.append(after)
        if len(reads) == 1:
            held.wait(10)  # the first read stays in flight until released
        return real_page(read_scope, after)

    monkeypatch.setattr(stream, "_page", counted)
    channel = bus.job_channel(job.pk)

    async def scenario() -> tuple[list[dict], dict]:
        hub = bus.hub()
        wake = hub.watch(channel)
        try:
            seen = hub.generation(channel)
            together = [asyncio.create_task(stream._read(scope, 0, seen)) for _ in range(20)]
            await asyncio.sleep(0.2)
            while not hub.connected:
                await asyncio.sleep(0.05)
            wake.clear()
            await asyncio.to_thread(_line, job, "announced\n")
            bus.publish([channel], "1")
            await asyncio.wait_for(wake.wait(), 5)
            woken = await stream._read(scope, 0, hub.generation(channel))
            held.set()
            return list(await asyncio.gather(*together)), woken
        finally:
            held.set()
            hub.unwatch(channel, wake)

    pages, woken = asyncio.run(scenario())
    assert len(reads) == 2  # 20 viewers, one read; the woken viewer's own
    assert all(page is pages[0] for page in pages)
    assert [item["chunk"] for item in woken["items"]] == ["first\n", "announced\n"]


def test_without_redis_the_caps_are_counted_in_the_process(org, settings):
    settings.REDIS_URL = ""  # the embedded default: no bus
    settings.JOB_LOG_STREAMS_PER_PRINCIPAL = 1
    first = stream_slots.acquire(principal="user:alice", organization_id=org.pk)
    with pytest.raises(stream_slots.StreamsExhausted) as refused:
        stream_slots.acquire(principal="user:alice", organization_id=org.pk)
    assert refused.value.scope == "principal"
    stream_slots.release_sync(first)
    stream_slots.release_sync(stream_slots.acquire(principal="user:alice", organization_id=org.pk))


def test_without_redis_a_stream_response_dropped_before_it_ran_gives_its_slot_back(
    org, member, settings
):
    settings.REDIS_URL = ""
    settings.JOB_LOG_STREAMS_PER_PRINCIPAL = 3
    _, scope = _run_scope(org)
    request = RequestFactory().get("/logs/stream")
    request.user = member
    # A client that leaves while the view runs: Django drops (or closes) the response before
    # iterating it, so the stream's own `finally` never runs.
    for _ in range(5):
        response = stream.sse_response(request, scope=scope, after=0)
        assert response.status_code == 200, response.content
        response.close()
        del response
        gc.collect()


def test_without_redis_a_slot_never_given_back_lapses_like_a_redis_one(org, settings, monkeypatch):
    settings.REDIS_URL = ""
    settings.JOB_LOG_STREAMS_PER_PRINCIPAL = 1
    stream_slots.acquire(principal="user:bob", organization_id=org.pk)  # never released
    with pytest.raises(stream_slots.StreamsExhausted):
        stream_slots.acquire(principal="user:bob", organization_id=org.pk)
    later = time.monotonic() + stream_slots.SLOT_SECONDS + 1
    with monkeypatch.context() as clock:
        clock.setattr(time, "monotonic", lambda: later)  # a minute on
        slot = stream_slots.acquire(principal="user:bob", organization_id=org.pk)
    stream_slots.release_sync(slot)


def test_under_wsgi_a_stream_ends_with_denied_once_its_viewer_loses_access(org, member, settings):
    settings.JOB_LOG_STREAM_REAUTHORIZE_SECONDS = 0.2
    settings.JOB_LOG_STREAM_POLL_SECONDS = 0.05
    settings.JOB_LOG_STREAM_WSGI_MAX_SECONDS = 5
    allowed = [True]
    _, scope = _run_scope(org)
    scope = dataclasses.replace(scope, still_allowed=lambda: allowed[0])
    request = RequestFactory().get("/logs/stream")
    request.user = member
    response = stream.sse_response(request, scope=scope, after=0)
    chunks = iter(response.streaming_content)
    assert next(chunks) == b"retry: 2000\n\n"
    allowed[0] = False  # the key is revoked, say
    started = time.monotonic()
    rest = b"".join(chunks)
    assert b"event: denied" in rest
    assert time.monotonic() - started < 2


POOL_WAIT = 0.5


def test_a_read_that_finds_the_pool_full_fails_after_one_wait_not_two(org):
    """A log read thread whose read timed out on a full pool gives up at once: waiting the
    pool's timeout a second time would stall every viewer queued behind that thread."""
    from django.db import OperationalError, connections

    _job, scope = _run_scope(org)
    default = connections["default"]
    pooled = {
        **default.settings_dict,
        "CONN_MAX_AGE": 0,
        "OPTIONS": {
            **default.settings_dict["OPTIONS"],
            "pool": {"min_size": 0, "max_size": 1, "timeout": POOL_WAIT},
        },
    }
    holder = type(default)(pooled, alias="default")
    holder.ensure_connection()  # the pool's only connection, taken
    outcome: list[object] = []

    def read() -> None:
        # This thread's connection comes from that pool, as a web process's read thread's does.
        connections["default"] = type(default)(pooled, alias="default")
        started = time.monotonic()
        try:
            stream._page(scope, 0)
        except OperationalError as exc:
            outcome.append(exc)
        finally:
            connections["default"].close()
        outcome.append(time.monotonic() - started)

    reader = threading.Thread(target=read)
    try:
        reader.start()
        reader.join(timeout=10)
    finally:
        holder.close()
        holder.close_pool()
    assert isinstance(outcome[0], OperationalError), outcome
    assert POOL_WAIT * 0.9 <= outcome[1] < POOL_WAIT * 1.8, outcome

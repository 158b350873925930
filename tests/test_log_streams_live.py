"""Live log streams under load, against the web role as deployed (gunicorn + two uvicorn
workers) on the test database and Redis: what open viewers cost PostgreSQL and Redis, that a
client that leaves is noticed, the caps on open streams, and a Redis that goes away.

Viewers are raw sockets driven by asyncio, so hundreds of them cost the test little."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
import pytest
import redis
from django.conf import settings
from django.db import connection

from apps.accounts.services import api_key_create_for_user
from apps.jobs import bus
from apps.jobs.logs import LogWriter
from apps.jobs.tests.support import server_being_bootstrapped
from tests import live

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WORKERS = 2
READ_THREADS = 3
# Sessions a web process may hold with any number of streams open (docs/jobs.md): its read
# threads' (a thread keeps its session while reads are queued), plus one for a request session
# whose backend is still exiting when a slow machine takes both readings of held_connections.
PER_PROCESS = READ_THREADS + 1


@dataclass
class Viewer:
    """One EventSource-like client on a raw socket."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    status: int
    headers: dict[str, str]
    body: bytes = b""
    received: bytearray = field(default_factory=bytearray)

    async def read_until(self, needle: bytes, count: int = 1, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while self.received.count(needle) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {needle!r} x{count} in {bytes(self.received[-300:])!r}")
            data = await asyncio.wait_for(self.reader.read(65536), left)
            if not data:
                raise AssertionError(f"stream closed: {bytes(self.received[-300:])!r}")
            self.received += data

    def close(self) -> None:
        self.writer.close()


async def open_viewer(port: int, path: str, headers: dict[str, str]) -> Viewer:
    """Connect and send the request; return once the stream has started (its `retry:` preamble
    arrived) or, for an error, once the whole JSON answer is read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = f"GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n{head}\r\n"
    writer.write(request.encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    lines = raw.decode("latin1").split("\r\n")
    status = int(lines[0].split()[1])
    fields = {
        name.strip().lower(): value.strip()
        for name, _, value in (line.partition(":") for line in lines[1:] if line)
    }
    viewer = Viewer(reader, writer, status, fields)
    if status == 200:
        await viewer.read_until(b"retry: 2000\n\n", timeout=30)
    else:
        viewer.body = await asyncio.wait_for(reader.readexactly(int(fields["content-length"])), 10)
        writer.close()
    return viewer


def _admin_query(sql: str, params: list[object]) -> list[tuple[object, ...]]:
    """A query on a connection of its own (to the `postgres` database, so it is none of the
    sessions it counts)."""
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname="postgres", autocommit=True
    ) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def app_sessions(name: str) -> set[tuple[int, object]]:
    """The web role's PostgreSQL sessions listed now (its processes connect with this
    application_name), each as (backend pid, when it started), so one can be told from a later
    one on a reused pid."""
    rows = _admin_query(
        "SELECT pid, backend_start FROM pg_stat_activity WHERE application_name = %s", [name]
    )
    return {(int(pid), started) for pid, started in rows}  # type: ignore[call-overload]


def app_connections(name: str) -> int:
    return len(app_sessions(name))


def held_connections(name: str, window: float = 0.5) -> int:
    """The sessions the web role holds: the same sessions listed at both ends of `window`
    seconds. A waiting stream that kept a connection is in both readings. Opening a stream costs
    a short session that is not: its request's own (authentication, the organization's
    membership, the subject), about 50 ms on a thread of the request's own, closed before the
    stream's first byte, yet listed by PostgreSQL until its backend has exited, which on a
    loaded machine is tens of milliseconds later, after the client has had its first byte. A
    single count taken as a batch of opens ends sees those (13 once, with a bound of 8)."""
    first = app_sessions(name)
    time.sleep(window)
    return len(first & app_sessions(name))


def database_sessions() -> int:
    """Sessions ever opened to the test database (PostgreSQL's own count, which every backend
    adds to by the time it exits): the short ones too, which no reading of pg_stat_activity is
    sure to catch."""
    rows = _admin_query(
        "SELECT sessions FROM pg_stat_database WHERE datname = %s",
        [connection.settings_dict["NAME"]],
    )
    return int(rows[0][0])  # type: ignore[call-overload]


def settled_database_sessions(name: str, timeout: float = 10) -> int:
    """`database_sessions()` once the web role has no session open and the count has stopped
    moving (a backend adds itself when it exits, a moment after its client closed)."""
    deadline = time.monotonic() + timeout
    last = database_sessions()
    while True:
        time.sleep(0.3)
        now = database_sessions()
        still_open = app_connections(name)
        if now == last and still_open == 0:
            return now
        if time.monotonic() > deadline:
            raise AssertionError(
                f"not settled: {still_open} sessions of the web role open, "
                f"{now - last} opened in the last 0.3 s"
            )
        last = now


def flush(writer: LogWriter) -> None:
    """`writer.flush()` for `asyncio.to_thread`: its connection is closed before the thread is
    let go, or it would stay open on an idle pool thread and the test database could not be
    dropped at the end of the session."""
    try:
        writer.flush()
    finally:
        connection.close()


def wait_for(predicate, timeout: float) -> float:  # type: ignore[no-untyped-def]
    """Seconds until `predicate()` held; fails after `timeout`."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.1)
    return time.monotonic() - start


def slot_keys(*names: str) -> int:
    client = redis.Redis.from_url(settings.REDIS_URL)
    return sum(client.zcard(f"autoglue:logstreams:{name}") for name in names)


@pytest.fixture
def running_server(org):
    """A server whose bootstrap is running, so its stream stays open until told otherwise."""
    return server_being_bootstrapped(org)


@pytest.fixture
def web(tmp_path, request) -> Iterator[tuple[live.Process, int, str]]:
    """The web role; `request.param` adds environment. Yields (process, port, app name)."""
    app_name = f"autoglue-web-{uuid.uuid4().hex[:8]}"
    extra = {
        "PGAPPNAME": app_name,
        "JOB_LOG_STREAM_READ_THREADS": str(READ_THREADS),
        "RATE_LIMIT": "100000/m",
        "RATE_LIMIT_USER": "100000/m",
        "RATE_LIMIT_KEY": "100000/m",
        # No pool: these tests count the sessions streams open and hold, which a pool would
        # hide (it keeps idle connections and reuses them). The pool's own bound, with 500
        # streams opening through it, is tests/test_db_pool_live.py's.
        "DATABASE_POOL_MAX_SIZE": "0",
        **getattr(request, "param", {}),
    }
    process, url = live.start_web(tmp_path, live.process_env(**extra), workers=WORKERS)
    try:
        yield process, int(url.rsplit(":", 1)[1]), app_name
    finally:
        process.stop()


def headers_for(user, org) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"X-API-KEY": api_key_create_for_user(user=user).plain, "X-Org-ID": str(org.pk)}


def hub_connections(process: live.Process) -> int:
    """Redis connections of the web workers' log bus hubs."""
    pids = set(live.process_tree(process.proc.pid))
    clients = redis.Redis.from_url(settings.REDIS_URL).client_list()
    return sum(
        1
        for client in clients
        if client.get("name", "").startswith(bus.HUB_CLIENT_NAME)
        and int(client["name"].rsplit(":", 1)[1]) in pids
    )


@pytest.mark.parametrize(
    "web",
    [{"JOB_LOG_STREAMS_PER_PRINCIPAL": "1000", "JOB_LOG_STREAMS_PER_ORG": "1000"}],
    indirect=True,
)
def test_five_hundred_open_streams_hold_a_few_database_connections_and_free_them_on_close(
    web, org, member, running_server
):
    process, port, app_name = web
    server, job = running_server
    headers = headers_for(member, org)  # the least role that may read logs (viewers may not)
    path = f"/api/v1/servers/{server.pk}/logs/stream"
    channel = bus.subject_channel("server", server.pk)
    baseline = app_connections(app_name)
    redis_port = redis.Redis.from_url(settings.REDIS_URL).connection_pool.connection_kwargs["port"]
    web_pids = live.process_tree(process.proc.pid)
    redis_before = live.tcp_connections(web_pids, redis_port)
    bound = baseline + WORKERS * PER_PROCESS
    viewers: list[Viewer] = []

    async def scenario() -> tuple[int, float, float]:
        try:
            # In batches, checking after each, so today's one-connection-per-viewer fails after
            # a few dozen instead of exhausting the shared server.
            for _ in range(20):
                batch = await asyncio.gather(*(open_viewer(port, path, headers) for _ in range(25)))
                viewers.extend(batch)
                assert [v.status for v in batch] == [200] * 25
                held = await asyncio.to_thread(held_connections, app_name)
                assert held <= bound, f"{held} connections with {len(viewers)} viewers open"
            # Every viewer follows: a line written reaches all 500, read through the few threads.
            writer = LogWriter(job)
            writer.system("a line for everyone")
            await asyncio.to_thread(flush, writer)
            await asyncio.gather(*(v.read_until(b"a line for everyone") for v in viewers))
            most = await asyncio.to_thread(held_connections, app_name)
            assert most <= bound
            assert redis.Redis.from_url(settings.REDIS_URL).pubsub_numsub(channel)[0][1] == 0
            assert hub_connections(process) <= WORKERS
            # Beside the hubs: each process's two bounded pools for short commands (the cache's,
            # the job bus's), never a connection per viewer.
            per_process = settings.CACHES["default"]["OPTIONS"]["max_connections"]
            per_process += bus.SYNC_POOL_SIZE + 1
            assert (
                live.tcp_connections(web_pids, redis_port) <= redis_before + WORKERS * per_process
            )
            assert slot_keys(f"p:user:{member.pk}") == 500
        finally:
            for v in viewers:
                v.close()
        closed_at = time.monotonic()
        await asyncio.sleep(0)
        connections_back = await asyncio.to_thread(
            wait_for, lambda: app_connections(app_name) <= baseline, 5
        )
        slots_back = await asyncio.to_thread(
            wait_for, lambda: slot_keys(f"p:user:{member.pk}", f"o:{org.pk}") == 0, 5
        )
        assert time.monotonic() - closed_at < 5
        return most, connections_back, slots_back

    most, connections_back, slots_back = asyncio.run(scenario())
    assert most <= bound
    assert connections_back < 5 and slots_back < 5


@pytest.mark.parametrize(
    "web",
    # No wake-up or re-check falls in the quiet second below.
    [{"JOB_LOG_STREAM_RECHECK_SECONDS": "600", "JOB_LOG_STREAM_REAUTHORIZE_SECONDS": "600"}],
    indirect=True,
)
def test_opening_a_stream_costs_one_short_session_and_waiting_streams_open_none(
    web, org, member, running_server
):
    _process, port, app_name = web
    server, _job = running_server
    headers = headers_for(member, org)
    path = f"/api/v1/servers/{server.pk}/logs/stream"
    opens = 12
    before = settled_database_sessions(app_name)
    viewers: list[Viewer] = []

    async def scenario() -> tuple[int, int, int]:
        try:
            for _ in range(opens):  # one after another, so no two share a read
                viewers.append(await open_viewer(port, path, headers))
            assert [v.status for v in viewers] == [200] * opens
            opened = await asyncio.to_thread(settled_database_sessions, app_name)
            await asyncio.sleep(1)
            quiet = await asyncio.to_thread(settled_database_sessions, app_name)
            held = await asyncio.to_thread(app_connections, app_name)
        finally:
            for v in viewers:
                v.close()
        return opened, quiet, held

    opened, quiet, held = asyncio.run(scenario())
    # Each open: its request's session (authentication, membership, the server), closed before
    # the stream starts, and its first read's on a read thread that had run out of work; plus,
    # once per process, the read after its hub subscribes (it wakes every viewer then, since a
    # line announced before it listened would be missed).
    assert opens <= opened - before <= 2 * opens + WORKERS
    # Then the waiting streams open no session at all (no polling, no per-stream connection)...
    assert quiet == opened
    # ...and hold none.
    assert held == 0


@pytest.mark.parametrize(
    "web",
    [{"JOB_LOG_STREAMS_PER_PRINCIPAL": "2", "JOB_LOG_STREAMS_PER_ORG": "3"}],
    indirect=True,
)
def test_streams_past_the_callers_or_the_orgs_cap_are_refused_until_one_closes(
    web, org, member, admin_user, running_server
):
    _process, port, _name = web
    server, _job = running_server
    alice, bob = headers_for(member, org), headers_for(admin_user, org)
    path = f"/api/v1/servers/{server.pk}/logs/stream"

    async def scenario() -> None:
        first, second = await open_viewer(port, path, alice), await open_viewer(port, path, alice)
        assert (first.status, second.status) == (200, 200)
        third = await open_viewer(port, path, alice)
        assert third.status == 429
        assert third.headers["content-type"] == "application/json"
        assert int(third.headers["retry-after"]) > 0
        body = json.loads(third.body)
        assert body["code"] == "too_many_streams" and "per principal" in body["message"]

        bobs = await open_viewer(port, path, bob)  # the org's third
        assert bobs.status == 200
        refused = await open_viewer(port, path, bob)
        assert refused.status == 429
        assert "per organization" in json.loads(refused.body)["message"]

        # Alice closes a tab: her slot is back within seconds, not at the stream's time limit.
        first.close()
        deadline = time.monotonic() + 5
        while True:
            again = await open_viewer(port, path, alice)
            if again.status == 200:
                break
            assert time.monotonic() < deadline, "the closed stream's slot did not come back"
            await asyncio.sleep(0.2)
        for v in (second, bobs, again):
            v.close()

    asyncio.run(scenario())


def _redis_server(tmp_path) -> tuple[subprocess.Popen, str]:  # type: ignore[type-arg]
    port = live.free_port()
    proc = subprocess.Popen(  # noqa: S603 - our own throwaway server
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    client = redis.Redis(port=port)
    wait_for(lambda: _pings(client), 10)
    return proc, f"redis://127.0.0.1:{port}/0"


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def test_with_redis_gone_open_streams_keep_following_and_new_ones_get_503(
    tmp_path, org, member, running_server
):
    redis_proc, redis_url = _redis_server(tmp_path)
    env = live.process_env(REDIS_URL=redis_url, JOB_LOG_STREAM_POLL_SECONDS="0.5")
    process, url = live.start_web(tmp_path, env, workers=1)
    port = int(url.rsplit(":", 1)[1])
    server, job = running_server
    headers = headers_for(member, org)
    path = f"/api/v1/servers/{server.pk}/logs/stream"
    try:

        async def scenario() -> None:
            following = await open_viewer(port, path, headers)
            assert following.status == 200
            os.killpg(redis_proc.pid, signal.SIGKILL)
            redis_proc.wait(timeout=10)

            refused = await open_viewer(port, path, headers)
            assert refused.status == 503
            assert int(refused.headers["retry-after"]) > 0
            assert json.loads(refused.body)["code"] == "log_stream_unavailable"

            writer = LogWriter(job)  # written while the bus is gone: found by polling
            writer.system("written without a bus")
            await asyncio.to_thread(flush, writer)
            await following.read_until(b"written without a bus", timeout=10)
            following.close()

        asyncio.run(scenario())
    finally:
        process.stop()
        if redis_proc.poll() is None:
            os.killpg(redis_proc.pid, signal.SIGKILL)
            redis_proc.wait(timeout=10)

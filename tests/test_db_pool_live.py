"""The web role's bounded pool of PostgreSQL connections, through gunicorn + uvicorn as deployed
(docs/architecture.md#database-connections): a burst of requests that all wait on the database
holds at most the pool's size per process, and the requests past it wait, then get a 503 with
Retry-After, never a 500; a database that goes away and comes back gives 503s, then answers
again, with no broken pooled connection served."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import psycopg
import pytest
import requests
from django.db import connection

from apps.accounts.services import api_key_create_for_user
from apps.infrastructure.models import Server
from apps.jobs.tests.support import server_being_bootstrapped
from tests import live
from tests.postgres import OwnPostgres
from tests.test_log_streams_live import Viewer, open_viewer

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WORKERS = 2
POOL = 3
POOL_TIMEOUT = 2.0
REQUESTS = 20
DEFAULT_POOL = 8  # the web role's DATABASE_POOL_MAX_SIZE when it is not set


def headers_for(user, org) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"X-API-KEY": api_key_create_for_user(user=user).plain, "X-Org-ID": str(org.pk)}


def sessions_named(name: str) -> int:
    """PostgreSQL's list of sessions open under this application_name, read on a connection to
    the `postgres` database (so it is none of them)."""
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname="postgres", autocommit=True
    ) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [name]
        ).fetchone()
    return int(row[0]) if row else 0


def test_a_burst_of_requests_waiting_on_the_database_holds_at_most_the_pool_per_process_and_the_rest_get_503(  # noqa: E501
    tmp_path, org, member
):
    headers = headers_for(member, org)
    app_name = f"autoglue-pool-{uuid.uuid4().hex[:8]}"
    env = live.process_env(
        PGAPPNAME=app_name,
        DATABASE_POOL_MAX_SIZE=str(POOL),
        DATABASE_POOL_TIMEOUT=str(POOL_TIMEOUT),
        RATE_LIMIT="100000/m",
        RATE_LIMIT_USER="100000/m",
        RATE_LIMIT_KEY="100000/m",
    )
    web, url = live.start_web(tmp_path, env, workers=WORKERS)
    workers = live.process_tree(web.proc.pid)[1:]
    assert len(workers) == WORKERS
    pg_port = int(connection.settings_dict["PORT"] or 5432)
    db = connection.settings_dict
    answers: list[requests.Response] = []
    lock = threading.Lock()

    def get() -> None:
        answer = requests.get(f"{url}/api/v1/servers", headers=headers, timeout=60)
        with lock:
            answers.append(answer)

    try:
        # Every request's list query waits behind this lock, holding its connection meanwhile.
        with psycopg.connect(
            host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"]
        ) as holder:
            holder.execute(f'LOCK TABLE "{Server._meta.db_table}" IN ACCESS EXCLUSIVE MODE')
            senders = [threading.Thread(target=get) for _ in range(REQUESTS)]
            for sender in senders:
                sender.start()
            per_process: list[int] = []
            total: list[int] = []
            # Past the pool's timeout, so the requests that found no free connection are answered
            # (with room for a loaded machine, where a request may reach the pool late).
            deadline = time.monotonic() + POOL_TIMEOUT + 4
            while time.monotonic() < deadline:
                per_process.extend(live.tcp_connections([pid], pg_port) for pid in workers)
                total.append(sessions_named(app_name))
                time.sleep(0.1)
            holder.rollback()
        for sender in senders:
            sender.join(timeout=60)

        # Bounded in each process, and the bound was reached (the test could have failed).
        assert max(per_process) == POOL, per_process
        assert max(total) <= WORKERS * POOL, total
        statuses = sorted(a.status_code for a in answers)
        assert len(statuses) == REQUESTS
        assert set(statuses) <= {200, 503}, statuses
        # The requests holding a connection finish once the lock goes; the others were told to
        # come back, with the contract's body, after waiting the pool's timeout.
        refused = [a for a in answers if a.status_code == 503]
        assert statuses.count(200) <= WORKERS * POOL
        assert len(refused) >= REQUESTS - WORKERS * POOL
        for answer in refused:
            assert answer.headers["Retry-After"].isdigit()
            assert answer.json()["code"] == "service_unavailable"
            assert answer.elapsed.total_seconds() >= POOL_TIMEOUT * 0.9
        # And the pool serves the next request at once.
        again = requests.get(f"{url}/api/v1/servers", headers=headers, timeout=30)
        assert again.status_code == 200, again.text
        assert "Traceback" not in web.output()
    finally:
        web.stop()


PROBE_TIMEOUT = 4.0  # the chart's readinessProbe and livenessProbe timeoutSeconds


def test_with_every_pooled_connection_busy_readyz_and_healthz_still_answer_200_within_the_probe_timeout(  # noqa: E501
    tmp_path, org, member
):
    """A full pool means PostgreSQL is reachable: a busy pod must stay ready (taking it out of
    service moves its load onto the others until every pod is unready), and its liveness never
    depends on the database."""
    headers = headers_for(member, org)
    env = live.process_env(
        DATABASE_POOL_MAX_SIZE="2",
        # The chart's default, longer than the probes' timeout.
        DATABASE_POOL_TIMEOUT="5",
        RATE_LIMIT="100000/m",
        RATE_LIMIT_USER="100000/m",
        RATE_LIMIT_KEY="100000/m",
    )
    web, url = live.start_web(tmp_path, env, workers=1)
    worker = live.process_tree(web.proc.pid)[1]
    pg_port = int(connection.settings_dict["PORT"] or 5432)
    db = connection.settings_dict
    try:
        with psycopg.connect(
            host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"]
        ) as holder:
            holder.execute(f'LOCK TABLE "{Server._meta.db_table}" IN ACCESS EXCLUSIVE MODE')
            servers = f"{url}/api/v1/servers"
            senders = [
                threading.Thread(
                    target=requests.get, args=(servers,), kwargs={"headers": headers, "timeout": 60}
                )
                for _ in range(4)
            ]
            for sender in senders:
                sender.start()
            # Both pooled connections taken by requests waiting on the lock, two more waiting
            # for the pool.
            deadline = time.monotonic() + 10
            while live.tcp_connections([worker], pg_port) < 2:
                assert time.monotonic() < deadline, "the pool never filled"
                time.sleep(0.05)
            time.sleep(0.3)
            ready = requests.get(f"{url}/api/v1/readyz", timeout=30)
            alive = requests.get(f"{url}/api/v1/healthz", timeout=30)
            holder.rollback()
        for sender in senders:
            sender.join(timeout=60)
        assert ready.status_code == 200, ready.text
        assert ready.elapsed.total_seconds() < PROBE_TIMEOUT, ready.elapsed
        assert ready.json()["checks"]["database"] == "ok", ready.json()
        # Said, for whoever reads it: busy, not gone.
        assert ready.json()["checks"]["database_pool"] == "exhausted", ready.json()
        assert ready.json()["status"] == "degraded"
        assert alive.status_code == 200, alive.text
        assert alive.elapsed.total_seconds() < 1, alive.elapsed
        # Once the lock is gone the pool is back: ready with no word about it.
        after = requests.get(f"{url}/api/v1/readyz", timeout=30).json()
        assert after["checks"]["database"] == "ok"
        assert "database_pool" not in after["checks"], after
        assert "Traceback" not in web.output()
    finally:
        web.stop()


@pytest.fixture
def own_postgres():
    server = OwnPostgres()
    yield server
    server.destroy()


def test_with_a_pool_a_database_outage_gives_503s_then_answers_again_within_seconds(
    tmp_path, own_postgres, org, member
):
    headers = headers_for(member, org)
    own_postgres.start()
    own_postgres.copy_database(connection.settings_dict, "autoglue")
    env = live.process_env(
        DATABASE_URL=own_postgres.url("autoglue"),
        DATABASE_POOL_MAX_SIZE="2",
        DATABASE_POOL_TIMEOUT="1",
    )
    web, url = live.start_web(tmp_path, env, workers=1)

    def get() -> requests.Response:
        return requests.get(f"{url}/api/v1/servers", headers=headers, timeout=30)

    try:
        # Both pooled connections opened and back in the pool, idle, when the server goes.
        barrier = threading.Barrier(2)
        firsts: list[int] = []

        def warm() -> None:
            barrier.wait()
            firsts.append(get().status_code)

        warmers = [threading.Thread(target=warm) for _ in range(2)]
        for warmer in warmers:
            warmer.start()
        for warmer in warmers:
            warmer.join(timeout=30)
        assert firsts == [200] * 2

        own_postgres.stop("fast")
        down = [get() for _ in range(3)]
        assert [a.status_code for a in down] == [503] * 3, [a.text for a in down]
        assert all(a.headers.get("Retry-After") for a in down)

        own_postgres.start()
        back_at = time.monotonic()
        seen: list[int] = []
        while True:
            status = get().status_code
            seen.append(status)
            if status == 200:
                break
            assert time.monotonic() - back_at < 20, seen
            time.sleep(0.25)
        assert set(seen) <= {200, 503}, seen
        # Then every request is served. (The requests during the outage found their pooled
        # connections broken already; the pool's check on a connection that broke while idle is
        # the next test's.)
        assert [get().status_code for _ in range(10)] == [200] * 10
    finally:
        web.stop()


def test_after_a_database_restart_with_no_request_meanwhile_the_first_request_is_served(
    tmp_path, own_postgres, org, member
):
    """Two connections idle in the pool when PostgreSQL restarts, and nobody asks while it is
    down: both are broken when the next request comes. The pool's check (CONN_HEALTH_CHECKS)
    finds that as the connection leaves the pool and opens a fresh one, so the very first
    request after the restart is answered, not a 503 for a connection that was dead."""
    headers = headers_for(member, org)
    own_postgres.start()
    own_postgres.copy_database(connection.settings_dict, "autoglue")
    env = live.process_env(
        DATABASE_URL=own_postgres.url("autoglue"),
        DATABASE_POOL_MAX_SIZE="2",
        DATABASE_POOL_TIMEOUT="5",
    )
    web, url = live.start_web(tmp_path, env, workers=1)
    worker = live.process_tree(web.proc.pid)[1]

    def get() -> requests.Response:
        return requests.get(f"{url}/api/v1/servers", headers=headers, timeout=30)

    try:
        # Two requests at once, held behind a lock until both have their connection: the pool
        # then keeps both, idle (min_size 0, closed only after a minute unused).
        with own_postgres.connect("autoglue") as holder, holder.transaction(force_rollback=True):
            holder.execute(f'LOCK TABLE "{Server._meta.db_table}" IN ACCESS EXCLUSIVE MODE')
            firsts: list[int] = []
            warmers = [threading.Thread(target=lambda: firsts.append(get().status_code))]
            warmers.append(threading.Thread(target=lambda: firsts.append(get().status_code)))
            for warmer in warmers:
                warmer.start()
            deadline = time.monotonic() + 15
            while live.tcp_connections([worker], own_postgres.port) < 2:
                assert time.monotonic() < deadline, "the two requests never both held one"
                time.sleep(0.05)
        for warmer in warmers:
            warmer.join(timeout=30)
        assert firsts == [200, 200]
        assert live.tcp_connections([worker], own_postgres.port) == 2

        own_postgres.stop("fast")
        own_postgres.start()

        first = get()
        assert first.status_code == 200, first.text
        assert [get().status_code for _ in range(5)] == [200] * 5
        assert "Traceback" not in web.output()
    finally:
        web.stop()


def test_five_hundred_log_streams_opening_in_bursts_all_start_within_the_default_pool(
    tmp_path, org, member
):
    """The burst the pool is for (viewers reconnecting after a restart), with the web role's
    default pool: every stream starts, and no process ever holds more than the pool. The
    streams' read threads take their connections from the same pool as the requests
    (apps.jobs.stream), so the pool alone is the bound. The count is sampled from a thread of
    its own all through the bursts, while the requests still hold their connections (read after
    a batch's headers, it would only see connections already given back)."""
    server, _job = server_being_bootstrapped(org)
    headers = headers_for(member, org)
    env = live.process_env(
        RATE_LIMIT="100000/m",
        RATE_LIMIT_USER="100000/m",
        RATE_LIMIT_KEY="100000/m",
        JOB_LOG_STREAMS_PER_PRINCIPAL="1000",
        JOB_LOG_STREAMS_PER_ORG="1000",
    )
    env.pop("DATABASE_POOL_MAX_SIZE", None)
    env.pop("DATABASE_POOL_TIMEOUT", None)
    web, url = live.start_web(tmp_path, env, workers=WORKERS)
    workers = live.process_tree(web.proc.pid)[1:]
    port = int(url.rsplit(":", 1)[1])
    pg_port = int(connection.settings_dict["PORT"] or 5432)
    path = f"/api/v1/servers/{server.pk}/logs/stream"
    viewers: list[Viewer] = []
    samples: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.extend(live.tcp_connections([pid], pg_port) for pid in workers)

    async def scenario() -> None:
        try:
            for _ in range(20):
                batch = await asyncio.gather(*(open_viewer(port, path, headers) for _ in range(25)))
                viewers.extend(batch)
                assert [v.status for v in batch] == [200] * 25, [v.body for v in batch]
        finally:
            for viewer in viewers:
                viewer.close()

    sampler = threading.Thread(target=sample)
    try:
        sampler.start()
        asyncio.run(scenario())
    finally:
        done.set()
        sampler.join(timeout=30)
        web.stop()
    # Sampled often enough to see the bursts, and the bound held in every sample.
    assert len(samples) >= 100, len(samples)
    assert max(samples) <= DEFAULT_POOL, sorted(samples)[-20:]
    assert max(samples) > 0, "no connection was ever seen: the sampler saw nothing"

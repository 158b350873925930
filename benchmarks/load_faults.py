"""Load and faults: N concurrent API clients while Redis, PostgreSQL, a web worker and the Celery
worker fail, then integrity figures read from the database (issue 20).

Everything runs on loopback against processes the script starts itself and stops at the end,
never the machine's shared services: its own PostgreSQL (initdb + pg_ctl in a temporary folder,
so it can be restarted), its own redis-server (no persistence, so a restart loses everything, as
a crashed cache does), migrations and `keys ensure` into them, gunicorn with uvicorn workers
(`-w 2`, the production settings module), a Celery worker (default and maintenance queues) and
two beats (the reaper), with the job system's recovery periods shortened so a run can wait for
them.

Clients (half with a user API key and `X-Org-ID`, half with the org key) loop until the
duration ends: creates with an `Idempotency-Key` (servers, labels, node pools, clusters), reads,
PATCH with `If-Match`, deletes (some sent by three clients at once on one object), attach /
detach / patch / delete of one shared node pool (replaced when deleted). A 5xx, a 429, a
connection error or `idempotency_key_in_flight` is retried with the same request and key.
Meanwhile short maintenance jobs are enqueued every `--job-every` seconds.

Faults (at fixed fractions of the duration; `--faults` picks some): Redis killed (SIGKILL) for
`--redis-down` seconds then started again empty; PostgreSQL restarted (fast stop, start); one
gunicorn worker SIGKILLed (the master starts another); the Celery worker SIGKILLed and started
again.

Afterwards, with the web role stopped (the worker and beat finish the jobs), it prints requests
by status class, 5xx by cause (the error `code`, and for a 500 the exception in the server log
line with the same request id), and the integrity figures:

- LOST: an object created with a 2xx that is gone though no client ever sent a delete for it;
- DUPLICATED: more than one object for one logical create (one Idempotency-Key);
- RESURRECTED: deleted with a 2xx but still there;
- UNAUDITED: a row without its create entry, a row gone without its delete entry, a 2xx PATCH
  without its update entry, and entries for changes that did not happen (a second create or
  delete entry for one object, a delete entry for a row that still exists);
- the audit chains' verification (`services.audit_verify`);
- JOBS LOST (still active once the load is over and the reaper had time) and JOBS RUN TWICE
  (claimed more than once).

    .venv/bin/python benchmarks/load_faults.py [--clients 50] [--duration 75]
        [--faults redis,postgres,web,celery] [--redis-down 10] [--key-cache N]
        [--job-every 0.5] [--beats 2] [--keep]

Exit status 0 when every integrity figure is zero, every chain verifies and every 5xx was a 503
answered while an injected outage lasted; 1 otherwise. Results: docs/faults.md.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import logging
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.live import Process, free_port, start_web, start_worker  # noqa: E402

PG_BIN = Path(os.environ.get("FAULTS_PG_BIN", "/usr/lib/postgresql/15/bin"))
FAULTS = ("redis", "postgres", "web", "celery")
# A fault's window stays open this long after the service is back: requests that were already
# failing (backoff, reconnects) still belong to it.
GRACE_SECONDS = 5.0
TOKEN = re.compile(r"lf[0-9a-f]{12}")
APP_FRAME = re.compile(r'File "[^"]*/(apps/[^"]+)", line \d+, in (\w+)')
EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Deadlock\w*))(?::|$)", re.M)
# kind -> (model label, field carrying the logical create's token, field a PATCH changes)
KINDS = {
    "servers": ("infrastructure.Server", "hostname", "hostname"),
    "labels": ("clusters.Label", "key", "value"),
    "node-pools": ("clusters.NodePool", "name", "name"),
    "clusters": ("clusters.Cluster", "name", "name"),
}
# The shared pool's attachments: (up to this roll, attach?, what).
ATTACHMENTS = (
    (0.3, True, "servers"),
    (0.55, False, "servers"),
    (0.7, True, "labels"),
    (0.8, False, "labels"),
)
CREATE_EVENTS = {"resource.create", "resource.attach", "key.create", "job.launch"}
DELETE_EVENTS = {"resource.delete", "resource.detach"}
JOB_KINDS = ("api_key_sweep", "refresh_token_purge")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- the processes -----------------------------------------------------------------------------


class Stack:
    """The script's own PostgreSQL, Redis, web role and worker, each in its own session so a
    signal reaches only what the script started (web and worker: `tests/live.py`)."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.pg_port = free_port()
        self.redis_port = free_port()
        self.pgdata = tmp / "pgdata"
        self.redis: Process | None = None
        self.web: Process | None = None
        self.worker: Process | None = None
        self.beats: list[Process] = []
        self.workers_started = 0
        self.env: dict[str, str] = {}

    # PostgreSQL refuses to run as root; as root the server runs as the `postgres` user.
    def _pg(self, *argv: str) -> None:
        cmd = [str(PG_BIN / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # noqa: S603

    def start_postgres(self) -> None:
        self.tmp.chmod(0o755)
        self.pgdata.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.pgdata, "postgres", "postgres")
            shutil.chown(self.tmp, "postgres", "postgres")
        self._pg(
            "initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust", "-E", "UTF8", "-N"
        )
        self.postgres_up()

    def postgres_up(self) -> None:
        options = (
            f"-p {self.pg_port} -k {self.tmp} -c listen_addresses=127.0.0.1 "
            # A throwaway database: durability against a machine crash is not what is tested
            # (a fast stop is a clean shutdown), and the shared disk is spared.
            "-c fsync=off -c full_page_writes=off -c synchronous_commit=off "
            "-c max_connections=200 -c shared_buffers=64MB"
        )
        log_file = self.tmp / "postgres.log"
        self._pg(
            "pg_ctl", "-D", str(self.pgdata), "-l", str(log_file), "-o", options, "-w", "start"
        )

    def postgres_down(self) -> None:
        self._pg("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "stop")

    def redis_up(self) -> None:
        argv = ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.tmp)]
        self.redis = Process(argv, dict(os.environ), self.tmp / f"redis-{time.monotonic_ns()}.log")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.redis_port), timeout=0.2),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def redis_kill(self) -> None:
        if self.redis:
            self.redis.kill()

    def make_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "AUTOGLUE_"))}
        master = base64.b64encode(secrets.token_bytes(32)).decode()
        env.update(
            DJANGO_SETTINGS_MODULE="autoglue.settings",
            PYTHONPATH=str(ROOT),
            AUTOGLUE_ENV="production",
            DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
            SECURE_SSL_REDIRECT="false",
            DATABASE_URL=f"postgres://postgres@127.0.0.1:{self.pg_port}/postgres",
            REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
            AUTOGLUE_MASTER_KEYS=f"faults:{master}",
            AUTOGLUE_DATA_DIR=str(self.tmp / "data"),
            LOG_FORMAT="json",
            LOG_LEVEL="WARNING",
            # Limits no test client reaches: 50 clients on one address would otherwise be 429s.
            RATE_LIMIT="100000000/m",
            RATE_LIMIT_USER="100000000/m",
            RATE_LIMIT_KEY="100000000/m",
            # The job system's recovery, on a scale the run can wait for: a run whose worker
            # died is requeued after 10 s of silence (90 s in production), a message Redis lost
            # is sent again after 10 s (300 s), and the reaper looks every 3 s (30 s).
            JOB_HEARTBEAT_SECONDS="1",
            JOB_HEARTBEAT_STALE_SECONDS="10",
            JOB_RESEND_AFTER_SECONDS="10",
            JOB_REAP_INTERVAL_SECONDS="3",
        )
        self.env = env
        return env

    def web_up(self, workers: int) -> str:
        self.web, url = start_web(self.tmp, self.env, workers=workers)
        return url

    def web_workers(self) -> list[int]:
        assert self.web is not None  # noqa: S101 - started before
        pid = self.web.proc.pid
        with contextlib.suppress(OSError):
            return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        return []

    def worker_up(self) -> None:
        self.workers_started += 1
        self.worker = start_worker(
            self.tmp,
            self.env,
            name=f"faults{self.workers_started}",
            queues="default,maintenance",
            pool="prefork",
            concurrency=1,
        )

    def worker_kill(self) -> None:
        if self.worker:
            self.worker.kill()

    def beats_up(self, count: int) -> None:
        argv = [str(Path(sys.executable).parent / "celery"), "-A", "autoglue", "beat"]
        argv += ["--loglevel", "WARNING", "--pidfile", ""]
        self.beats = [Process(argv, self.env, self.tmp / f"beat-{n}.log") for n in range(count)]

    def stop_web(self) -> None:
        if self.web:
            self.web.stop()

    def stop_all(self) -> None:
        for proc in (self.web, self.worker, *self.beats):
            if proc:
                proc.stop()
        if self.redis:
            self.redis.stop()
        if (self.pgdata / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self.postgres_down()


# --- what the clients saw ----------------------------------------------------------------------


@dataclass
class Attempt:
    """One HTTP request as sent: status 0 is a connection error (reset, refused, timeout)."""

    started: float
    ended: float
    op: str
    method: str
    route: str
    status: int
    code: str
    request_id: str
    retry_after: bool


@dataclass
class Record:
    """Everything the clients did that the database must agree with afterwards."""

    attempts: list[Attempt] = field(default_factory=list)
    # idempotency key -> (kind, token, ids answered with a 2xx)
    creates: dict[str, tuple[str, str, list[str]]] = field(default_factory=dict)
    deleted_ok: set[tuple[str, str]] = field(default_factory=set)
    delete_tried: set[tuple[str, str]] = field(default_factory=set)
    # (kind, id, field, value) of every PATCH answered 2xx
    patched: list[tuple[str, str, str, str]] = field(default_factory=list)
    windows: list[tuple[str, float, float]] = field(default_factory=list)
    recoveries: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    alive: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    hot_pool: str = ""
    redis_down: float = 10.0
    jobs_enqueued: int = 0
    jobs_refused: Counter[str] = field(default_factory=Counter)
    # Creates never answered 2xx after every retry, by the last answer.
    gave_up: Counter[str] = field(default_factory=Counter)

    def in_window(self, attempt: Attempt) -> str:
        """The faults a request overlapped (from sending to its answer), if any."""
        return "+".join(
            name
            for name, start, end in self.windows
            if attempt.started <= end and attempt.ended >= start
        )


class Client:
    """One API client: its own connection pool and credentials, retrying like a careful SDK."""

    def __init__(
        self, url: str, headers: dict[str, str], record: Record, ssh_key: str, stop_at: float
    ) -> None:
        self.url = url
        self.session = requests.Session()
        self.session.headers.update(headers)
        self.record = record
        self.ssh_key = ssh_key
        self.stop_at = stop_at
        self.rng = random.Random()  # noqa: S311 - a load mix, not a secret
        self.last_code = ""

    def call(
        self, op: str, method: str, route: str, path: str, body: Any = None, **headers: str
    ) -> tuple[int, Any, dict[str, str]]:
        """Sends until an answer that is not worth retrying (or the attempts run out); status 0
        when the last attempt had no answer at all."""
        status, data, answer_headers = 0, None, {}
        for attempt in range(8):
            request_id = uuid.uuid4().hex
            started = time.monotonic()
            code, retry_after = "", False
            try:
                response = self.session.request(
                    method,
                    self.url + path,
                    json=body,
                    headers={"X-Request-ID": request_id, **headers},
                    timeout=15,
                )
                status, answer_headers = response.status_code, dict(response.headers)
                retry_after = "Retry-After" in response.headers
                try:
                    data = response.json()
                except ValueError:
                    data = None
                if status >= 400 and isinstance(data, dict):
                    code = str(data.get("code", ""))
            except requests.RequestException as exc:
                status, data, code = 0, None, type(exc).__name__
            self.last_code = code
            self.record.attempts.append(
                Attempt(
                    started,
                    time.monotonic(),
                    op,
                    method,
                    route,
                    status,
                    code,
                    request_id,
                    retry_after,
                )
            )
            retry = (
                status == 0 or status >= 500 or status == 429 or code == "idempotency_key_in_flight"
            )
            if not retry or time.monotonic() > self.stop_at + 20:
                return status, data, answer_headers
            time.sleep(min(2.0, 0.2 * 2**attempt) * (0.5 + self.rng.random()))
        return status, data, answer_headers

    # --- operations -----------------------------------------------------------------------

    def pick(self, kind: str) -> str | None:
        with self.record.lock:
            alive = self.record.alive[kind]
            return self.rng.choice(alive) if alive else None

    def create(self, kind: str) -> str | None:
        token = f"lf{secrets.token_hex(6)}"
        key = f"faults-{uuid.uuid4()}"
        n = self.rng.randrange(1, 250 * 250)
        body: dict[str, Any] = {
            "servers": {
                "hostname": token,
                "private_ip_address": f"10.{n // 250 % 250}.{n % 250}.{self.rng.randrange(1, 250)}",
                "role": "worker",
                "ssh_key_id": self.ssh_key,
                "ssh_user": "ubuntu",
                "status": "pending",
            },
            "labels": {"key": token, "value": "v0"},
            "node-pools": {"name": token, "role": "worker"},
            "clusters": {
                "name": token,
                "cluster_provider": "hetzner",
                "region": "fsn1",
                "docker_image": "ghcr.io/glueops/cluster-tools",
                "docker_tag": "v1.0.0",
            },
        }[kind]
        with self.record.lock:
            self.record.creates[key] = (kind, token, [])
        status, data, _ = self.call(
            "create", "POST", f"/{kind}", f"/api/v1/{kind}", body, **{"Idempotency-Key": key}
        )
        if 200 <= status < 300 and isinstance(data, dict) and data.get("id"):
            object_id = str(data["id"])
            with self.record.lock:
                self.record.creates[key][2].append(object_id)
                self.record.alive[kind].append(object_id)
            # Sometimes the client repeats a create it already saw succeed (a lost answer, as
            # far as it knows): the replay must name the same object.
            if self.rng.random() < 0.1:
                status, data, _ = self.call(
                    "create-replay",
                    "POST",
                    f"/{kind}",
                    f"/api/v1/{kind}",
                    body,
                    **{"Idempotency-Key": key},
                )
                if 200 <= status < 300 and isinstance(data, dict) and data.get("id"):
                    with self.record.lock:
                        self.record.creates[key][2].append(str(data["id"]))
            return object_id
        with self.record.lock:
            self.record.gave_up[f"{status or 'no answer'} {self.last_code}".strip()] += 1
        return None

    def read(self) -> None:
        kind = self.rng.choice(list(KINDS))
        object_id = self.pick(kind) if self.rng.random() < 0.5 else None
        if object_id:
            self.call("read", "GET", f"/{kind}/{{id}}", f"/api/v1/{kind}/{object_id}")
        else:
            self.call("read", "GET", f"/{kind}", f"/api/v1/{kind}?limit=50")

    def patch(self, kind: str, object_id: str | None = None) -> None:
        object_id = object_id or self.pick(kind)
        if not object_id:
            return
        status, data, headers = self.call(
            "read", "GET", f"/{kind}/{{id}}", f"/api/v1/{kind}/{object_id}"
        )
        if status != 200 or not isinstance(data, dict):
            return
        _, token_field, patch_field = KINDS[kind]
        value = f"{data.get(token_field) or 'x'}-p{self.rng.randrange(10**6)}"[:60]
        if kind == "labels":
            value = f"v{self.rng.randrange(10**6)}"
        etag = headers.get("ETag", "")
        status, _, _ = self.call(
            "patch",
            "PATCH",
            f"/{kind}/{{id}}",
            f"/api/v1/{kind}/{object_id}",
            {patch_field: value},
            **({"If-Match": etag} if etag else {}),
        )
        if 200 <= status < 300:
            with self.record.lock:
                self.record.patched.append((kind, object_id, patch_field, value))

    def delete(self, kind: str, object_id: str) -> None:
        with self.record.lock:
            self.record.delete_tried.add((kind, object_id))
        status, _, _ = self.call(
            "delete", "DELETE", f"/{kind}/{{id}}", f"/api/v1/{kind}/{object_id}"
        )
        if 200 <= status < 300:
            with self.record.lock:
                self.record.deleted_ok.add((kind, object_id))
                with contextlib.suppress(ValueError):
                    self.record.alive[kind].remove(object_id)

    def delete_some(self) -> None:
        kind = self.rng.choice(list(KINDS))
        object_id = self.pick(kind)
        if not object_id or object_id == self.record.hot_pool:
            return
        if self.rng.random() < 0.3:
            # Three clients delete one object at the same moment.
            barrier = threading.Barrier(3)

            def racer() -> None:
                other = Client(
                    self.url, dict(self.session.headers), self.record, self.ssh_key, self.stop_at
                )
                barrier.wait(timeout=5)
                other.delete(kind, object_id)

            threads = [threading.Thread(target=racer) for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        else:
            self.delete(kind, object_id)

    def attachment(self, pool: str, attach: bool, kind: str) -> None:
        """Attaches one of the live servers or labels to the pool, or detaches it."""
        object_id = self.pick(kind)
        if not object_id:
            return
        base, single = f"/api/v1/node-pools/{pool}/{kind}", kind[:-1]
        if attach:
            body = {f"{single}_ids": [object_id]}
            self.call("pool-attach", "POST", f"/node-pools/{{id}}/{kind}", base, body)
        else:
            route = f"/node-pools/{{id}}/{kind}/{{{single}Id}}"
            self.call("pool-detach", "DELETE", route, f"{base}/{object_id}")

    def pool_op(self) -> None:
        pool = self.record.hot_pool
        if not pool:
            return
        roll = self.rng.random()
        for threshold, attach, kind in ATTACHMENTS:
            if roll < threshold:
                self.attachment(pool, attach, kind)
                return
        if roll < 0.97:
            self.patch("node-pools", pool)
        else:
            # The pool goes while others attach to it; the next pool takes its place.
            self.delete("node-pools", pool)
            new = self.create("node-pools")
            with self.record.lock:
                if new and self.record.hot_pool == pool:
                    self.record.hot_pool = new

    def run(self) -> None:
        while time.monotonic() < self.stop_at:
            roll = self.rng.random()
            if roll < 0.28:
                self.create(self.rng.choice(list(KINDS)))
            elif roll < 0.58:
                self.read()
            elif roll < 0.72:
                self.patch(self.rng.choice(list(KINDS)))
            elif roll < 0.82:
                self.delete_some()
            else:
                self.pool_op()


# --- the faults --------------------------------------------------------------------------------


PLAN = {"redis": 0.12, "postgres": 0.40, "web": 0.60, "celery": 0.75}


def inject(stack: Stack, name: str, redis_down: float) -> None:
    """One fault, returning once the service is back (or, for the web role, once a worker is
    gone: its master starts another)."""
    if name == "redis":
        log(f"fault: Redis killed for {redis_down:.0f} s")
        stack.redis_kill()
        time.sleep(redis_down)
        stack.redis_up()
    elif name == "postgres":
        log("fault: PostgreSQL restarted (fast stop, start)")
        stack.postgres_down()
        stack.postgres_up()
    elif name == "web":
        workers = stack.web_workers()
        log(f"fault: gunicorn worker {workers[:1]} SIGKILLed")
        if workers:
            os.kill(workers[0], signal.SIGKILL)
    elif name == "celery":
        log("fault: Celery worker SIGKILLed and started again")
        stack.worker_kill()
        stack.worker_up()


def time_to_recover(url: str, headers: dict[str, str]) -> float:
    """Seconds until an API read through a key answers 200 again."""
    began = time.monotonic()
    probe = requests.Session()
    probe.headers.update(headers)
    while time.monotonic() < began + 60:
        with contextlib.suppress(requests.RequestException):
            if probe.get(f"{url}/api/v1/servers?limit=1", timeout=5).status_code == 200:
                break
        time.sleep(0.05)
    return time.monotonic() - began


def run_faults(
    stack: Stack, record: Record, url: str, plan: tuple[list[str], float, float, dict[str, str]]
) -> None:
    """Each fault at its moment; the window a request's 5xx may be blamed on is recorded."""
    faults, start, duration, headers = plan
    for name in sorted(faults, key=PLAN.__getitem__):
        time.sleep(max(0.0, start + PLAN[name] * duration - time.monotonic()))
        began = time.monotonic()
        inject(stack, name, record.redis_down)
        back = time.monotonic()
        record.recoveries[name] = time_to_recover(url, headers)
        record.windows.append((name, began, back + record.recoveries[name] + GRACE_SECONDS))


def enqueue_jobs(record: Record, stop_at: float, every: float) -> None:
    """Short maintenance runs (platform sweeps, harmless to repeat), marked in their payload, so
    that afterwards each can be found finished exactly once."""
    from django.db import connection

    from apps.jobs import services as jobs

    n = 0
    while time.monotonic() < stop_at:
        n += 1
        try:
            jobs.job_enqueue(kind=JOB_KINDS[n % len(JOB_KINDS)], payload={"faults": n})
            record.jobs_enqueued += 1
        except Exception as exc:  # noqa: BLE001 - counted: the database may be restarting
            record.jobs_refused[type(exc).__name__] += 1
            connection.close()
        time.sleep(every)
    connection.close()


def settle_jobs(timeout: float) -> dict[str, int]:
    """Waits (bounded) until no marked run is active; returns the runs by status, those the
    reaper requeued after their worker died, and those run twice otherwise."""
    from django.db import connection
    from django.db.models import Count

    from apps.jobs.models import JobRun

    connection.close()  # opened before PostgreSQL restarted
    runs = JobRun.objects.filter(payload__has_key="faults")
    deadline = time.monotonic() + timeout
    while runs.filter(status__in=JobRun.ACTIVE_STATUSES).exists():
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    figures = dict(runs.values_list("status").annotate(n=Count("pk")))
    # A run the reaper requeued because its worker died runs again by design (idempotent kinds
    # only), and says so in its log; any other second claim is a job run twice.
    again = runs.filter(attempts__gt=1)
    requeued = again.filter(logs__stream="system", logs__chunk__startswith="worker lost").distinct()
    figures["requeued after its worker died"] = requeued.count()
    figures["run twice"] = again.count() - figures["requeued after its worker died"]
    return figures


# --- setup -------------------------------------------------------------------------------------


def seed() -> tuple[str, dict[str, str], dict[str, str]]:
    """The organization, its owner's user key and an org key; returns the org id and the headers
    of each kind of client."""
    from apps.accounts import services as accounts
    from apps.accounts.models import User
    from apps.orgs import services as orgs

    user = User.objects.create_user("faults@example.com")
    org = orgs.organization_create(creator=user, name="faults")
    user_key = accounts.api_key_create_for_user(user=user, name="faults").plain
    org_key = accounts.api_key_create_for_org(organization=org, name="faults")
    return (
        str(org.pk),
        {"X-API-KEY": user_key, "X-Org-ID": str(org.pk)},
        {"X-ORG-KEY": org_key.plain, "X-ORG-SECRET": org_key.secret or ""},
    )


def prepare(
    stack: Stack, args: argparse.Namespace
) -> tuple[str, str, dict[str, str], dict[str, str]]:
    """PostgreSQL and Redis up, the schema and a signing key in, the organization seeded, the
    worker and the web role started; returns the web role's URL, the organization's id and the
    headers of the two kinds of client."""
    log(f"PostgreSQL on :{stack.pg_port}, Redis on :{stack.redis_port} ({stack.tmp})")
    stack.start_postgres()
    stack.redis_up()
    env = stack.make_env()
    if args.key_cache is not None:
        env["API_KEY_LOCAL_CACHE_SECONDS"] = str(args.key_cache)
    os.environ.update(env)
    import django
    from django.core.management import call_command

    # The web role and the worker boot (imports, mostly) while the schema is written.
    stack.worker_up()
    booting = ThreadPoolExecutor(1).submit(stack.web_up, args.web_workers)
    django.setup()
    # The script's own Django (migrate, seeding, enqueueing) would print the platform's JSON
    # log lines among the figures; what went wrong there is counted instead.
    logging.disable(logging.CRITICAL)
    # Nobody here waits for a job's Celery result (runs are tracked in the database); without
    # this each message sent subscribes to its result in Redis, and the subscriptions left when
    # Redis goes away complain at exit. Only this process: the worker stores results as usual.
    from autoglue.celery import app as celery_app

    celery_app.conf.result_backend = "disabled"
    call_command("migrate", interactive=False, verbosity=0)
    call_command("keys", "ensure", stdout=io.StringIO())
    org_id, user_headers, org_headers = seed()
    log("migrated and seeded")
    # Two beats by default, as the issue ran: a second one doubles messages, never effects.
    stack.beats_up(args.beats)
    url = booting.result()
    return url, org_id, user_headers, org_headers


# --- what the database says --------------------------------------------------------------------


def classify_500s(record: Record, web_log: Path) -> dict[str, str]:
    """request id -> the exception behind a 500, read from the server's JSON log lines."""
    wanted = {a.request_id for a in record.attempts if a.status >= 500}
    causes: dict[str, str] = {}
    for line in web_log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("request_id", "") in wanted and "exception" in entry:
            causes[entry["request_id"]] = exception_cause(entry["exception"])
    return causes


def exception_cause(text: str) -> str:
    # The exception raised last (a chained traceback ends with it); its message may span several
    # lines, so the class is found by its shape, not by position.
    raised = EXCEPTION_LINE.findall(text)
    name = raised[-1] if raised else "unknown"
    short = name.rsplit(".", 1)[-1]
    if "deadlock detected" in text:
        # Where our code waited: which lock met the other is what a fix needs.
        frames = APP_FRAME.findall(text)
        return "PostgreSQL deadlock" + (f" in {frames[-1][0]} {frames[-1][1]}" if frames else "")
    if name.startswith("redis.") or "redis.exceptions" in text:
        return f"Redis {short}"
    if short in ("OperationalError", "InterfaceError"):
        return f"PostgreSQL {short}"
    return name


def report_requests(record: Record, web_log: Path) -> int:
    """Prints status classes and 5xx by cause; returns the number of 5xx not excused."""
    attempts = record.attempts
    classes = Counter("conn" if a.status == 0 else f"{a.status // 100}xx" for a in attempts)
    print(f"\nrequests sent: {len(attempts)} (retries included)")
    print("  by status class: " + ", ".join(f"{k} {v}" for k, v in sorted(classes.items())))
    codes = Counter(f"{a.status} {a.code}" for a in attempts if 400 <= a.status < 500)
    if codes:
        print("  4xx by code: " + ", ".join(f"{k} x{v}" for k, v in codes.most_common(8)))
    conns = Counter(
        f"{a.code} during {record.in_window(a) or 'no fault'}" for a in attempts if a.status == 0
    )
    if conns:
        print("  no answer: " + ", ".join(f"{k} x{v}" for k, v in conns.most_common()))
    causes = classify_500s(record, web_log)
    by_cause: Counter[str] = Counter()
    by_window: Counter[str] = Counter()
    bad = 0
    for a in attempts:
        if a.status < 500:
            continue
        window = record.in_window(a)
        cause = a.code or "no JSON body"
        if a.code in ("", "internal_error"):
            cause = causes.get(a.request_id, f"{cause} (no log line)")
        # An outage the script caused, answered as the contract asks: 503 with Retry-After.
        excused = a.status == 503 and a.retry_after and bool(window)
        bad += 0 if excused else 1
        verdict = "ok: 503 in an outage" if excused else "NOT OK"
        by_cause[f"{a.status} {cause} [{verdict}]"] += 1
        by_window[window or "no fault"] += 1
    print(f"  5xx: {sum(by_cause.values())}, not excused: {bad}; by cause:")
    for line, count in by_cause.most_common():
        print(f"    {count:6d}  {line}")
    if by_window:
        print("    during: " + ", ".join(f"{k} {v}" for k, v in by_window.most_common()))
    return bad


@dataclass
class Findings:
    figures: Counter[str] = field(default_factory=Counter)
    details: list[str] = field(default_factory=list)

    def add(self, figure: str, detail: str) -> None:
        self.figures[figure] += 1
        self.details.append(f"{figure}: {detail}")


def rows_by_kind(org_id: str) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """The ids of each kind still in the database, and token -> ids of the objects that carry a
    logical create's token."""
    from django.apps import apps

    existing: dict[str, set[str]] = {}
    token_ids: dict[str, set[str]] = defaultdict(set)
    for kind, (label, token_field, _) in KINDS.items():
        model = apps.get_model(label)
        rows = model._base_manager.filter(organization_id=org_id).values_list("pk", token_field)
        existing[kind] = {str(pk) for pk, _ in rows}
        for pk, value in rows:
            match = TOKEN.search(str(value))
            if match:
                token_ids[match.group()].add(str(pk))
    return existing, token_ids


def check_objects(record: Record, org_id: str, entries: list[tuple], found: Findings) -> None:
    """LOST, DUPLICATED, RESURRECTED: what the clients were told against what is stored."""
    existing, token_ids = rows_by_kind(org_id)
    labels = {label.lower() for label, _, _ in KINDS.values()}
    for event, object_type, object_id, changes in entries:
        # Objects created and deleted since count too: their create entry carries the token.
        if event == "resource.create" and object_type in labels:
            match = TOKEN.search(json.dumps(changes))
            if match:
                token_ids[match.group()].add(object_id)
    for key, (kind, token, ids) in record.creates.items():
        distinct = set(ids) | token_ids.get(token, set())
        for _ in range(len(distinct) - 1):
            found.add("duplicated", f"{kind} {token} (Idempotency-Key {key}): {sorted(distinct)}")
        for object_id in set(ids):
            if object_id not in existing[kind] and (kind, object_id) not in record.delete_tried:
                found.add("lost", f"{kind} {object_id}")
    for kind, object_id in sorted(record.deleted_ok):
        if object_id in existing[kind]:
            found.add("resurrected", f"{kind} {object_id}")


def audited_rows(org_id: str) -> set[tuple[str, str]]:
    """(model label, id) of every audited row of the organization."""
    from apps.audit.signals import audited_models

    rows: set[tuple[str, str]] = set()
    for model in audited_models():
        label = model._meta.label_lower
        manager = model._base_manager
        if label == "orgs.organization":
            pks = manager.filter(pk=org_id).values_list("pk", flat=True)
        elif any(f.name == "organization" for f in model._meta.get_fields()):
            pks = manager.filter(organization_id=org_id).values_list("pk", flat=True)
        else:
            continue
        rows.update((label, str(pk)) for pk in pks)
    return rows


def entry_counts(
    entries: list[tuple],
) -> tuple[dict[tuple[str, str], Counter[str]], dict[tuple[str, str], list[dict]]]:
    """Per object: how many create-like and delete-like entries, and the changes of its update
    entries."""
    counts: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    updates: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for event, object_type, object_id, changes in entries:
        if event in CREATE_EVENTS:
            counts[(object_type, object_id)]["create"] += 1
        elif event in DELETE_EVENTS:
            counts[(object_type, object_id)]["delete"] += 1
        elif event == "resource.update":
            updates[(object_type, object_id)].append(changes)
    return counts, updates


def check_audit(record: Record, org_id: str, entries: list[tuple], found: Findings) -> None:
    """UNAUDITED, both ways: each row has exactly one create entry and no delete entry, each row
    gone has one of each, each PATCH answered 2xx has its update entry."""
    counts, updates = entry_counts(entries)
    rows = audited_rows(org_id)
    for obj in sorted(rows):
        seen = counts.get(obj, Counter())
        if seen["create"] != 1 or seen["delete"]:
            found.add(
                "unaudited",
                f"{obj} exists with {seen['create']} create and {seen['delete']} delete entries",
            )
    for obj, seen in sorted(counts.items()):
        if obj not in rows and (seen["create"] != 1 or seen["delete"] != 1):
            found.add(
                "unaudited",
                f"{obj} is gone with {seen['create']} create and {seen['delete']} delete entries",
            )
    for kind, object_id, name, value in record.patched:
        changes = updates[(KINDS[kind][0].lower(), object_id)]
        if not any((c.get(name) or {}).get("after") == value for c in changes):
            found.add("unaudited", f"PATCH {kind} {object_id} {name}={value} has no update entry")


def check_integrity(record: Record, org_id: str) -> Findings:
    from django.db import connection

    from apps.audit import services as audit
    from apps.audit.models import AuditEntry

    connection.close()  # opened before PostgreSQL restarted
    found = Findings()
    entries = list(
        AuditEntry.objects.filter(organization_id=org_id).values_list(
            "event", "object_type", "object_id", "changes"
        )
    )
    found.figures["audit entries"] = len(entries)
    check_objects(record, org_id, entries, found)
    check_audit(record, org_id, entries, found)
    for report in audit.audit_verify():
        if report.ok:
            found.figures["chains verified"] += 1
        else:
            found.add("chains broken", str(report.broken))
    return found


def load(url: str, headers: list[dict[str, str]], stack: Stack, args: argparse.Namespace) -> Record:
    """The clients and the faults, until the duration is over and every client has stopped."""
    setup = requests.Session()
    setup.headers.update(headers[0])
    ssh = setup.post(f"{url}/api/v1/ssh", json={"name": "faults", "type": "ed25519"}, timeout=30)
    ssh.raise_for_status()
    record = Record(redis_down=args.redis_down)
    start = time.monotonic()
    stop_at = start + args.duration
    seeder = Client(url, headers[0], record, ssh.json()["id"], stop_at)
    record.hot_pool = seeder.create("node-pools") or ""
    for kind in ("servers", "labels"):
        for _ in range(3):
            seeder.create(kind)
    if not record.hot_pool:
        raise RuntimeError("could not create the shared node pool")
    clients = [
        Client(url, headers[n % 2], record, seeder.ssh_key, stop_at) for n in range(args.clients)
    ]
    threads = [threading.Thread(target=c.run, daemon=True) for c in clients]
    faults = threading.Thread(
        target=run_faults,
        args=(stack, record, url, (args.faults, start, args.duration, headers[0])),
        daemon=True,
    )
    enqueuer = threading.Thread(
        target=enqueue_jobs, args=(record, stop_at, args.job_every), daemon=True
    )
    for thread in [*threads, faults, enqueuer]:
        thread.start()
    for thread in [faults, enqueuer, *threads]:
        thread.join(timeout=max(1.0, stop_at + 90 - time.monotonic()))
    log(f"load done in {time.monotonic() - start:.0f} s; waiting for the jobs")
    return record


FIGURES = ("lost", "duplicated", "resurrected", "unaudited", "chains broken")
# Longer than a resend (10 s) plus a stale heartbeat (10 s) plus a reaper pass (3 s).
JOB_SETTLE_SECONDS = 40.0
DETAILS_SHOWN = 8


def report(record: Record, found: Findings, web_log: Path, args: argparse.Namespace) -> int:
    """Prints the figures; returns how many of them are failures."""
    print("\n=== load and faults ===")
    print(f"clients {args.clients}, duration {args.duration:.0f} s, faults {args.faults or 'none'}")
    for name, seconds in record.recoveries.items():
        print(f"  recovery after {name}: {seconds:.2f} s (until an API read answered 200)")
    bad_5xx = report_requests(record, web_log)
    answered = sum(1 for _, _, ids in record.creates.values() if ids)
    print(
        f"\ncreates: {len(record.creates)} logical ({answered} answered 2xx); deletes answered "
        f"2xx: {len(record.deleted_ok)}; PATCHes answered 2xx: {len(record.patched)}"
    )
    if record.gave_up:
        print(
            "  creates given up after 8 attempts, by last answer: "
            + ", ".join(f"{k} x{v}" for k, v in record.gave_up.most_common())
        )
    print("integrity:")
    for name in FIGURES:
        lines = [d for d in found.details if d.startswith(f"{name}: ")]
        for line in lines[:DETAILS_SHOWN]:
            print("    " + line)
        if len(lines) > DETAILS_SHOWN:
            print(f"    ... and {len(lines) - DETAILS_SHOWN} more {name}")
    for name in FIGURES:
        print(f"  {name.upper():14s} {found.figures[name]}")
    print(
        f"  chains verified: {found.figures['chains verified']}; "
        f"audit entries in the organization: {found.figures['audit entries']}"
    )
    print(f"  5xx not excused: {bad_5xx}")
    return bad_5xx + sum(found.figures[name] for name in FIGURES)


def report_jobs(record: Record, figures: dict[str, int]) -> int:
    """Prints what became of the enqueued jobs; returns how many were lost or run twice."""
    active = sum(figures.get(status, 0) for status in ("queued", "running", "retrying"))
    twice = figures.get("run twice", 0)
    refused = ", ".join(f"{k} x{v}" for k, v in record.jobs_refused.items()) or "none"
    print(f"jobs: {record.jobs_enqueued} enqueued (refused: {refused}); by status: {figures}")
    print(f"  JOBS LOST      {active} (active after up to {JOB_SETTLE_SECONDS:.0f} s)")
    print(f"  JOBS RUN TWICE {twice} (claimed again without the reaper requeueing them)")
    return active + twice


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=75.0, help="seconds of load")
    parser.add_argument("--faults", default=",".join(FAULTS), help="comma list, or 'none'")
    parser.add_argument("--redis-down", type=float, default=10.0, help="seconds")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument(
        "--key-cache",
        type=int,
        help="API_KEY_LOCAL_CACHE_SECONDS of the web role (production: 10); an outage longer "
        "than it reaches the shared cache on every API-key request",
    )
    parser.add_argument(
        "--job-every", type=float, default=0.5, help="seconds between two enqueued jobs"
    )
    parser.add_argument("--beats", type=int, default=2, help="celery beat processes")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    args = parser.parse_args()
    args.faults = [f for f in args.faults.split(",") if f and f != "none"]
    unknown = set(args.faults) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults: {', '.join(sorted(unknown))}")

    tmp = Path(tempfile.mkdtemp(prefix="autoglue-faults-"))
    stack = Stack(tmp)
    try:
        url, org_id, user_headers, org_headers = prepare(stack, args)
        log(f"web on {url}; {args.clients} clients for {args.duration:.0f} s; {args.faults}")
        record = load(url, [user_headers, org_headers], stack, args)
        stack.stop_web()
        job_figures = settle_jobs(JOB_SETTLE_SECONDS)
        assert stack.web is not None  # noqa: S101 - started by prepare()
        failures = report(record, check_integrity(record, org_id), stack.web.log, args)
        failures += report_jobs(record, job_figures)
        print("RESULT: " + ("PASS" if not failures else "FAIL"))
        if args.keep:
            print(f"logs kept in {tmp}")
        return 1 if failures else 0
    finally:
        stack.stop_all()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

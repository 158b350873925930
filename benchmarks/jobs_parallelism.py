"""Jobs: 10 bastions bootstrap in parallel, and live log viewers do not slow the API.

Two measurements, each side by side in one run, against the real parts of a production
deployment on loopback: a throwaway PostgreSQL database (`bench_jobs_<pid>`, dropped at the end),
Redis index 15 (flushed), the Celery `ssh` worker exactly as production runs it (thread pool,
16 threads), real sshd processes (one per bastion) and gunicorn with uvicorn workers.

1. Bootstrap: `bastion_sweep()` is called with 1 pending bastion, then with 10, and timed until
   every one is `ready` in the database. The bootstrap script is a stand-in that sleeps
   (`--script-seconds`, 2 s), so the figure is the job system's own overhead and parallelism.
   Goal: 10 take at most 2.0x the time of 1 (the original Go service ran them one after another,
   10x).
2. API under viewers: p50/p90 of `GET /api/v1/servers` (API key, sequential, a new connection per
   request) with no log viewer, then with 50 SSE viewers attached to a bastion's live log, while
   a writer appends a line to that bastion's job every 100 ms (in both phases, so the viewers are
   the only difference). Phases alternate over `--rounds`. Goal: at most 1.2x.

    .venv/bin/python benchmarks/jobs_parallelism.py [--rounds 4] [--requests 100] [--viewers 50]

Exit status 0 when both goals are met.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import http.client
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BOOTSTRAP_GOAL = 2.0
VIEWERS_GOAL = 1.2
REDIS_DB = 15
DB_NAME = f"bench_jobs_{os.getpid()}"
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def bench_env(script: Path) -> dict[str, str]:
    """Production settings (autoglue.settings), pointed at the benchmark's database and Redis."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "autoglue.settings",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB_NAME}",
            "REDIS_URL": f"redis://127.0.0.1:6379/{REDIS_DB}",
            "AUTOGLUE_ENV": "production",
            "DJANGO_SECRET_KEY": "bench-only-secret-key-not-for-production-use-0123456789",
            "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1",
            # The test suite's fixed master key (32 bytes of 0x42); never used anywhere else.
            "AUTOGLUE_MASTER_KEYS": "test-master:QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=",
            "AUTOGLUE_ALLOW_LOOPBACK_TARGETS": "true",
            "SECURE_SSL_REDIRECT": "false",
            "BASTION_BOOTSTRAP_SCRIPT": str(script),
            # The limiter stays on (its Redis round trip is part of every request) with a limit
            # a benchmark cannot reach: ~2,000 requests a minute from one address otherwise 429.
            "RATE_LIMIT": "1000000/m",
            "RATE_LIMIT_USER": "1000000/m",
            "RATE_LIMIT_KEY": "1000000/m",
            # One owner opens every viewer: the caps on open streams would answer 429 past 20.
            "JOB_LOG_STREAMS_PER_PRINCIPAL": "100000",
            "JOB_LOG_STREAMS_PER_ORG": "100000",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


class Processes:
    """Children started by the benchmark, each in its own session; stopped by process group."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.children: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        out = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.children.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 10) -> None:
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop_all(self) -> None:
        for _, proc in reversed(self.children):
            self.stop(proc)

    def check_alive(self) -> None:
        for name, proc in self.children:
            if proc.poll() is not None and proc.returncode not in (0, -15):
                tail = (self.logs / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{tail}")


# --- setup and teardown ------------------------------------------------------------------------


def create_database() -> None:
    import psycopg

    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def drop_database() -> None:
    import psycopg

    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def flush_redis() -> None:
    import redis

    redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB).flushdb()


def wait_for(predicate, timeout: float, what: str, procs: Processes, every: float = 0.05) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        procs.check_alive()
        time.sleep(every)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


@contextlib.contextmanager
def bench_setup(
    env: dict[str, str], procs: Processes, tmp: Path, own_env: dict[str, str]
) -> Iterator[None]:
    """The throwaway database (migrated) and Redis index, Django set up in this process with
    `own_env`; on the way out the children stopped, their logs shown if something failed, and
    the database and the index dropped."""
    db_created = False
    try:
        create_database()
        db_created = True
        flush_redis()
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
        )
        os.environ.update(own_env)
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        logging.disable(logging.INFO)  # the services' own log lines are not the table
        yield
    except BaseException:
        for name, _ in procs.children:
            log = tmp / f"{name}.log"
            if log.exists():
                print(f"--- last lines of {name}.log ---", file=sys.stderr)
                print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
        raise
    finally:
        procs.stop_all()
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        if db_created:
            drop_database()
        with contextlib.suppress(Exception):
            flush_redis()


# --- 1. bastion bootstrap: 1 vs 10 -----------------------------------------------------------


def bootstrap_round(org, key, sshds, procs: Processes) -> float:  # type: ignore[no-untyped-def]
    """New pending bastions, one per sshd; seconds from the sweep until all are ready."""
    from apps.infrastructure.bootstrap import bastion_sweep
    from apps.infrastructure.models import Server

    ids = [
        Server.objects.create(
            organization=org,
            ssh_key=key,
            hostname=f"bastion-{sshd.port}-{time.monotonic_ns()}",
            public_ip_address="127.0.0.1",
            private_ip_address="127.0.0.1",
            ssh_user=getpass.getuser(),
            ssh_port=sshd.port,
            role=Server.Role.BASTION,
            status=Server.Status.PENDING,
        ).pk
        for sshd in sshds
    ]
    start = time.perf_counter()
    counts = bastion_sweep()
    if counts["dispatched"] != len(ids):
        raise RuntimeError(f"sweep dispatched {counts}, expected {len(ids)}")
    rows = Server.objects.filter(pk__in=ids)

    def settled() -> bool:
        return not rows.filter(
            status__in=[Server.Status.PENDING, Server.Status.PROVISIONING]
        ).exists()

    wait_for(settled, 60, f"{len(ids)} bastion(s) to bootstrap", procs, every=0.02)
    elapsed = time.perf_counter() - start
    failed = list(rows.exclude(status=Server.Status.READY).values_list("last_error", flat=True))
    if failed:
        raise RuntimeError(f"{len(failed)} bootstrap(s) failed: {failed[0]}")
    return elapsed


def bench_bootstrap(args, env, procs: Processes, tmp: Path) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    from apps.infrastructure.keygen import generate_key_pair
    from apps.infrastructure.models import SSHKey
    from apps.infrastructure.tests.sshd import SSHDaemon, ensure_sshd
    from apps.orgs.models import Organization

    ensure_sshd()
    org = Organization.objects.create(name="bench bootstrap")
    material = generate_key_pair(key_type="ed25519")
    key = SSHKey.objects.create(
        organization=org,
        name="bench",
        key_type=SSHKey.KeyType.ED25519,
        public_key=material.public_key,
        fingerprint=material.fingerprint,
        private_key=material.private_key,
    )
    sshds = []
    try:
        for i in range(args.bastions):
            root = tmp / f"sshd-{i}"
            root.mkdir()
            sshd = SSHDaemon(root)
            sshd.authorize(getpass.getuser(), material.public_key)
            sshd.start()
            sshds.append(sshd)
        worker = procs.start(
            "ssh-worker",
            [
                str(BIN / "celery"), "-A", "autoglue", "worker",
                "--queues", "ssh", "--pool", "threads", "--concurrency", "16",
                "--hostname", f"ssh-bench{os.getpid()}@%h",
                "--without-mingle", "--without-gossip", "--loglevel", "INFO",
            ],
            env,
        )  # fmt: skip
        # Warm-up (not timed): waits for the worker to start, imports paramiko, opens its
        # database connections.
        bootstrap_round(org, key, sshds[:1], procs)
        ones, tens = [], []
        for _ in range(args.bootstrap_rounds):
            ones.append(bootstrap_round(org, key, sshds[:1], procs))
            tens.append(bootstrap_round(org, key, sshds, procs))
        procs.stop(worker)
    finally:
        for sshd in sshds:
            sshd.stop()
    return statistics.median(ones), statistics.median(tens)


# --- 2. API latency with SSE viewers attached ----------------------------------------------------


class Viewer(threading.Thread):
    """One EventSource-like client on a raw socket: counts the events it receives."""

    def __init__(self, port: int, path: str, headers: dict[str, str], stop: threading.Event):
        super().__init__(daemon=True)
        self.port, self.path, self.headers, self.stop = port, path, headers, stop
        self.status = ""
        self.preamble = threading.Event()
        self.log_events = 0
        self.error = ""

    def run(self) -> None:
        try:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        except OSError as exc:
            self.error = str(exc)
            return
        try:
            head = "".join(f"{k}: {v}\r\n" for k, v in self.headers.items())
            sock.sendall(
                f"GET {self.path} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n"
                f"{head}\r\n".encode()
            )
            sock.settimeout(0.25)
            buf = b""
            while not self.stop.is_set():
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    self.error = self.error or "stream closed by the server"
                    return
                buf += data
                if not self.status and b"\r\n" in buf:
                    self.status = buf.split(b"\r\n", 1)[0].decode(errors="replace")
                while b"\n\n" in buf:
                    event, buf = buf.split(b"\n\n", 1)
                    if b"retry: " in event:
                        self.preamble.set()
                    if b"event: log" in event:
                        self.log_events += 1
        except OSError as exc:
            self.error = str(exc)
        finally:
            sock.close()


def get_once(port: int, headers: dict[str, str]) -> float:
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/api/v1/servers", headers={"Host": "localhost", **headers})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    elapsed = time.perf_counter() - start
    if response.status != 200:
        raise RuntimeError(f"GET /api/v1/servers: {response.status} {body[:300]!r}")
    return elapsed


def pg_counters() -> tuple[int, int]:
    """(sessions ended, transactions committed) in the benchmark's database so far."""
    import psycopg

    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        row = conn.execute(
            "SELECT sessions, xact_commit FROM pg_stat_database WHERE datname = %s", [DB_NAME]
        ).fetchone()
    return int(row[0]), int(row[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def seed_viewers_org():  # type: ignore[no-untyped-def]
    """An owner with an API key, five servers and a bastion whose bootstrap never ends (its log
    stream stays open). Returns (its running job, the bastion, request headers)."""
    from django.utils import timezone

    from apps.accounts.models import User
    from apps.accounts.services import api_key_create_for_user
    from apps.infrastructure.keygen import generate_key_pair
    from apps.infrastructure.models import Server, SSHKey
    from apps.jobs.models import JobRun
    from apps.orgs.models import Membership, Organization

    org = Organization.objects.create(name="bench viewers")
    user = User.objects.create_user("bench-viewers@example.com")
    Membership.objects.create(user=user, organization=org, role=Membership.Role.OWNER)
    api_key = api_key_create_for_user(user=user, name="bench").plain
    material = generate_key_pair(key_type="ed25519")
    key = SSHKey.objects.create(
        organization=org,
        name="bench",
        key_type=SSHKey.KeyType.ED25519,
        public_key=material.public_key,
        fingerprint=material.fingerprint,
        private_key=material.private_key,
    )
    for i in range(5):
        Server.objects.create(
            organization=org,
            ssh_key=key,
            hostname=f"node-{i}",
            private_ip_address=f"10.0.0.{i + 1}",
            ssh_user="ubuntu",
            role=Server.Role.WORKER,
        )
    bastion = Server.objects.create(
        organization=org,
        ssh_key=key,
        hostname="bastion-live",
        public_ip_address="203.0.113.10",
        private_ip_address="10.0.1.1",
        ssh_user="ubuntu",
        role=Server.Role.BASTION,
        status=Server.Status.PROVISIONING,
    )
    job = JobRun.objects.create(
        kind="bootstrap_bastion",
        queue="ssh",
        organization=org,
        subject_type=JobRun.SubjectType.SERVER,
        subject_id=bastion.pk,
        status=JobRun.Status.RUNNING,
        started_at=timezone.now(),
        heartbeat_at=timezone.now(),
        attempts=1,
    )
    return job, bastion, {"X-API-KEY": api_key, "X-Org-ID": str(org.pk)}


def start_web(args, env, procs: Processes, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    """The web role as production runs it; returns (process, port) once it answers."""
    port = _free_port()
    # Under ASGI every request runs its sync view on a thread of its own, so a persistent
    # connection (the default DATABASE_CONN_MAX_AGE=60) is left behind by each request until
    # PostgreSQL refuses new clients ("too many clients already" after ~100 requests here).
    # Django's advice for ASGI is CONN_MAX_AGE=0; see docs/performance-jobs.md.
    web_env = {**env, "DATABASE_CONN_MAX_AGE": str(args.web_conn_max_age)}
    web = procs.start(
        "web",
        [
            str(BIN / "gunicorn"), "autoglue.asgi",
            "--worker-class", "autoglue.workers.UvicornWorker",
            "--workers", "2", "--bind", f"127.0.0.1:{port}",
            "--access-logfile", "/dev/null", "--graceful-timeout", "3",
        ],
        web_env,
    )  # fmt: skip

    def up() -> bool:
        try:
            get_once(port, headers)
            return True
        except (OSError, RuntimeError, http.client.HTTPException):
            return False

    wait_for(up, 60, "gunicorn to answer", procs, every=0.2)
    return web, port


class LineWriter(threading.Thread):
    """Appends a line to the job's transcript every `interval` s (flushed and published at
    once, as LogWriter does for a busy job)."""

    def __init__(self, job, interval: float) -> None:  # type: ignore[no-untyped-def]
        super().__init__(daemon=True)
        self.job, self.interval = job, interval
        self.stopped = threading.Event()
        self.lines = 0

    def run(self) -> None:
        from django.db import connection

        from apps.jobs.logs import LogWriter

        writer = LogWriter(self.job)
        try:
            while not self.stopped.wait(self.interval):
                writer.system(f"bench line {self.lines}")
                writer.flush()
                self.lines += 1
        finally:
            connection.close()


class Phases:
    """Latency samples and PostgreSQL activity of the two phases."""

    def __init__(self, port: int, headers: dict[str, str], requests: int) -> None:
        self.port, self.headers, self.requests = port, headers, requests
        self.times: dict[str, list[float]] = {"none": [], "viewers": []}
        self.round_p50s: dict[str, list[float]] = {"none": [], "viewers": []}
        # seconds, sessions ended, transactions committed
        self.activity = {"none": [0.0, 0, 0], "viewers": [0.0, 0, 0]}

    def measure(self, phase: str) -> None:
        sessions, commits = pg_counters()
        start = time.monotonic()
        times = [get_once(self.port, self.headers) for _ in range(self.requests)]
        self.times[phase] += times
        self.round_p50s[phase].append(statistics.median(times))
        time.sleep(0.6)  # PostgreSQL publishes its counters about once a second
        after = pg_counters()
        totals = self.activity[phase]
        totals[0] += time.monotonic() - start
        totals[1] += after[0] - sessions
        totals[2] += after[1] - commits

    def rate(self, phase: str, index: int) -> float:
        totals = self.activity[phase]
        return totals[index] / totals[0]


def viewers_round(args, phases: Phases, path: str) -> list[int]:  # type: ignore[no-untyped-def]
    """Attach the viewers, check each got the preamble, measure, detach. Returns how many log
    events each viewer received while measured."""
    stop = threading.Event()
    viewers = [Viewer(phases.port, path, phases.headers, stop) for _ in range(args.viewers)]
    for viewer in viewers:
        viewer.start()
    try:
        deadline = time.monotonic() + 30
        for viewer in viewers:
            if not viewer.preamble.wait(max(0.0, deadline - time.monotonic())):
                raise RuntimeError(
                    f"a viewer got no `retry:` preamble ({viewer.status!r} {viewer.error})"
                )
        time.sleep(1.0)  # the backlog is sent; from here on viewers only follow
        before = [v.log_events for v in viewers]
        phases.measure("viewers")
        broken = [v for v in viewers if v.error or not v.is_alive()]
        if broken:
            raise RuntimeError(f"{len(broken)} viewer(s) dropped: {broken[0].error}")
        return [v.log_events - b for v, b in zip(viewers, before, strict=True)]
    finally:
        stop.set()
        for viewer in viewers:
            viewer.join(timeout=5)


def bench_viewers(args, env, procs: Processes) -> dict[str, float]:  # type: ignore[no-untyped-def]
    job, bastion, headers = seed_viewers_org()
    web, port = start_web(args, env, procs, headers)
    writer = LineWriter(job, args.write_interval)
    writer.start()
    phases = Phases(port, headers, args.requests)
    path = f"/api/v1/servers/{bastion.pk}/logs/stream"
    events: list[int] = []
    try:
        for _ in range(60):  # warm both workers: imports, the key's cache entry
            get_once(port, headers)
        for _ in range(args.rounds):
            phases.measure("none")
            events += viewers_round(args, phases, path)
    finally:
        writer.stopped.set()
        writer.join(timeout=5)
        procs.stop(web)
    none, viewers = phases.times["none"], phases.times["viewers"]
    return {
        "none_p50": statistics.median(none),
        "none_p90": percentile(none, 0.9),
        "viewers_p50": statistics.median(viewers),
        "viewers_p90": percentile(viewers, 0.9),
        # Per round, then the median: a burst of load from elsewhere on a shared machine skews
        # one round, not the verdict.
        "ratio": statistics.median(
            v / n
            for n, v in zip(phases.round_p50s["none"], phases.round_p50s["viewers"], strict=True)
        ),
        "events_min": min(events),
        "events_median": statistics.median(events),
        "lines": writer.lines,
        **{f"{phase}_sessions_s": phases.rate(phase, 1) for phase in phases.activity},
        **{f"{phase}_commits_s": phases.rate(phase, 2) for phase in phases.activity},
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- main ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bastions", type=int, default=10)
    parser.add_argument("--script-seconds", type=float, default=2.0)
    parser.add_argument("--bootstrap-rounds", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--write-interval", type=float, default=0.1)
    parser.add_argument(
        "--web-conn-max-age",
        type=int,
        default=0,
        help="DATABASE_CONN_MAX_AGE for the web role (60, the settings default, leaks a "
        "connection per request under ASGI)",
    )
    args = parser.parse_args()

    # SIGTERM / SIGHUP unwind through the `finally` below like Ctrl-C does.
    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _raise)
    signal.signal(signal.SIGHUP, _raise)

    started = time.monotonic()
    tmp_dir = tempfile.TemporaryDirectory(prefix="bench-jobs-")
    tmp = Path(tmp_dir.name)
    script = tmp / "stand-in-bootstrap.sh"
    script.write_text(
        f'echo "==> stand-in bootstrap on $(hostname)"\nsleep {args.script_seconds}\necho "done"\n'
    )
    env = bench_env(script)
    procs = Processes(tmp)
    with tmp_dir, bench_setup(env, procs, tmp, own_env=env):
        one, ten = bench_bootstrap(args, env, procs, tmp)
        api = bench_viewers(args, env, procs)

    return 0 if report(args, one, ten, api, time.monotonic() - started) else 1


def report(args, one: float, ten: float, api: dict[str, float], total: float) -> bool:  # type: ignore[no-untyped-def]
    """Print the table; True when both goals are met (main's exit status follows it)."""
    boot_ratio = ten / one
    api_ratio = api["ratio"]
    ok_boot, ok_api = boot_ratio <= BOOTSTRAP_GOAL, api_ratio <= VIEWERS_GOAL

    def verdict(ratio: float, goal: float) -> str:
        return f"goal ≤ {goal}x  {'ok' if ratio <= goal else 'MISSED'}"

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:.2f} ms"

    rows = [
        ("bastion bootstrap", "1 bastion", f"{one:.2f} s", ""),
        ("", f"{args.bastions} bastions", f"{ten:.2f} s", ""),
        ("", "ratio", f"{boot_ratio:.2f}x", verdict(boot_ratio, BOOTSTRAP_GOAL)),
        (
            "GET /api/v1/servers",
            "no viewers",
            "p50 " + ms(api["none_p50"]),
            "p90 " + ms(api["none_p90"]),
        ),
        (
            "",
            f"{args.viewers} SSE viewers",
            "p50 " + ms(api["viewers_p50"]),
            "p90 " + ms(api["viewers_p90"]),
        ),
        (
            "",
            "p50 ratio (median)",
            f"{api_ratio:.2f}x",
            verdict(api_ratio, VIEWERS_GOAL),
        ),
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    print(
        f"(stand-in script sleeps {args.script_seconds:g} s; median of {args.bootstrap_rounds} "
        f"rounds; {args.rounds}x{args.requests} requests per phase; viewers received "
        f"{api['events_median']:g} log events each while measured (min {api['events_min']}); "
        f"{api['lines']} lines written; total {total:.0f} s)"
    )
    print(
        "(PostgreSQL, per second: new connections "
        f"{api['none_sessions_s']:.0f} -> {api['viewers_sessions_s']:.0f}, commits "
        f"{api['none_commits_s']:.0f} -> {api['viewers_commits_s']:.0f}, no viewers -> viewers)"
    )
    return ok_boot and ok_api


if __name__ == "__main__":
    sys.exit(main())

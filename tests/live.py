"""Real processes for tests about jobs: the web role (gunicorn + uvicorn workers, as deployed)
and Celery workers, pointed at the test database and the test Redis.

Tests using these need `transactional_db` (the processes see only committed rows)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import requests
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_env(**extra: str) -> dict[str, str]:
    """Production settings module, pointed at the test database and Redis."""
    db = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        DJANGO_SETTINGS_MODULE="autoglue.settings",
        AUTOGLUE_ENV="production",
        DJANGO_SECRET_KEY=settings.SECRET_KEY,
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=settings.REDIS_URL,
        AUTOGLUE_MASTER_KEYS=os.environ["AUTOGLUE_MASTER_KEYS"],
        AUTOGLUE_ALLOW_LOOPBACK_TARGETS="true",
        LOG_FORMAT="console",
        LOG_LEVEL="WARNING",
        JOB_HEARTBEAT_SECONDS="0.5",
    )
    env.update(extra)
    return env


class Process:
    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.handle = log.open("wb")
        self.proc = subprocess.Popen(  # noqa: S603 - our own binaries
            argv,
            cwd=ROOT,
            env=env,
            stdout=self.handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.handle.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def start_web(tmp: Path, env: dict[str, str], workers: int = 2) -> tuple[Process, str]:
    port = free_port()
    web = Process(
        [
            str(BIN / "gunicorn"),
            "-c",
            str(ROOT / "autoglue" / "gunicorn_conf.py"),
            "autoglue.asgi",
            "--worker-class",
            "autoglue.workers.UvicornWorker",
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
        ],
        env,
        tmp / f"web-{port}.log",
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/api/v1/healthz", timeout=2).status_code == 200:
                return web, url
        except requests.RequestException:
            time.sleep(0.3)
        if web.proc.poll() is not None:
            break
    web.stop()
    raise AssertionError(f"web did not start:\n{web.output()}")


def start_worker(
    tmp: Path,
    env: dict[str, str],
    *,
    name: str,
    queues: str = "ssh",
    pool: str = "threads",
    concurrency: int = 4,
) -> Process:
    return Process(
        [
            str(BIN / "celery"),
            "-A",
            "autoglue",
            "worker",
            "--queues",
            queues,
            "--pool",
            pool,
            "--concurrency",
            str(concurrency),
            "--hostname",
            f"{name}@%h",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "WARNING",
        ],
        env,
        tmp / f"worker-{name}.log",
    )


def process_tree(pid: int) -> list[int]:
    """A process and its children (gunicorn's master and workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *map(int, children)]


def tcp_connections(pids: list[int], port: int) -> int:
    """How many TCP connections these processes hold to a server on `port` (their sockets, as
    listed in /proc/net/tcp)."""
    inodes: set[str] = set()
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                count += 1
    return count


def start_compose_worker(
    tmp: Path, env: dict[str, str], *, service: str, concurrency: int | None = 4
) -> Process:
    """A worker started with the command line docker-compose.yml gives `service`, and the
    variables the service sets beyond the shared ones (its role's own, e.g. the webhooks
    worker's DATABASE_CONN_MAX_AGE), so a test about the deployed worker fails when the
    deployment changes (only the concurrency, unless None, and a node name of its own are set
    here; `env` wins over the service's variables)."""
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    shared = compose["x-app"]["environment"]
    own = {
        name: str(value)
        for name, value in compose["services"][service].get("environment", {}).items()
        if name not in shared
    }
    argv = list(compose["services"][service]["command"])
    assert argv[:2] == ["celery", "-A"], argv
    argv[0] = str(BIN / "celery")
    if "--concurrency" in argv and concurrency is not None:
        argv[argv.index("--concurrency") + 1] = str(concurrency)
    argv += ["--hostname", f"{service}-{free_port()}@%h"]
    return Process(argv, {**own, **env}, tmp / f"worker-{service}.log")


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


class RedisServer:
    """A redis-server of the test's own, on a free loopback port, without persistence: a
    restart comes back empty, as a broker pod without a volume does. Fault tests kill this one,
    never the shared server."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: Process | None = None

    def start(self) -> None:
        self.process = Process(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            self.folder / f"redis-{self.port}-{time.monotonic_ns()}.log",
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"redis-server did not start:\n{self.process.output()}")

    def client(self):  # type: ignore[no-untyped-def]
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=5)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.handle.close()
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


def start_beat(tmp: Path, env: dict[str, str]) -> Process:
    """A real beat with the database scheduler (the schedules are rows the test creates)."""
    return Process(
        [
            str(BIN / "celery"),
            "-A",
            "autoglue",
            "beat",
            "--loglevel",
            "WARNING",
            "--pidfile",
            str(tmp / f"beat-{free_port()}.pid"),
            "--schedule",
            str(tmp / "beat-schedule"),
        ],
        env,
        tmp / "beat.log",
    )


@contextlib.contextmanager
def publishing_to(url: str) -> Iterator[None]:
    """Point this process's Celery app at another broker (the test's own Redis) for a while, so
    jobs enqueued by the test reach the workers it started."""
    from autoglue.celery import app

    saved = app.conf.broker_url, app.conf.broker_write_url

    def reset() -> None:
        # What Celery itself resets after a fork: the cached connection and producer pools.
        app._pool = None
        if "amqp" in app.__dict__:
            app.amqp._producer_pool = None

    app.conf.broker_url = app.conf.broker_write_url = url
    reset()
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.broker_write_url = saved
        reset()

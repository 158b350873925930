"""Live log streams: what 1,000 idle viewers cost the web role.

Against the web role as production runs it (gunicorn with two uvicorn workers, the production
settings) on a throwaway PostgreSQL database and Redis index 15, set up and torn down with the
helpers of jobs_parallelism.py. Phases alternate over `--rounds`: no viewer, then `--viewers`
EventSource-like clients (raw sockets, asyncio) attached to one running bastion's live log and
left idle (nothing is written; keepalives flow). Per phase: the web role's PostgreSQL sessions
(pg_stat_activity, by the application_name its processes connect with), its Redis connections,
its RSS (master and workers), and p50/p90 of `GET /api/v1/servers` (API key, sequential, a new
connection per request). After the viewers close: how long until the sessions are back.

Goals: API p50 with the viewers at most 1.2x without; PostgreSQL sessions with the viewers at
most workers x (JOB_LOG_STREAM_READ_THREADS + 1) above none; back within 5 s of the close.

    .venv/bin/python benchmarks/log_viewers.py [--viewers 1000] [--rounds 5] [--requests 100]

Exit status 0 when every goal is met.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import jobs_parallelism as jp

API_GOAL = 1.2
BACK_GOAL = 5.0
WORKERS = 2
READ_THREADS = 4
APP_NAME = f"bench-log-viewers-{os.getpid()}"
live: Any = None  # tests.live, imported once Django is set up


class IdleViewers:
    """`count` SSE clients on one event loop in a thread of their own."""

    def __init__(self, port: int, path: str, headers: dict[str, str], count: int) -> None:
        self.port, self.path, self.count = port, path, count
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n"
            + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "\r\n"
        ).encode()
        self.opened = 0
        self.errors: list[str] = []
        self.ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),))

    def start(self, timeout: float = 120) -> None:
        self._thread.start()
        if not self.ready.wait(timeout) or self.errors:
            self.stop()
            raise RuntimeError(f"{self.opened}/{self.count} viewers opened: {self.errors[:1]}")

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        gate = asyncio.Semaphore(50)
        writers: list[asyncio.StreamWriter] = []
        tasks = [asyncio.create_task(self._one(gate, writers)) for _ in range(self.count)]
        await self._stop.wait()
        for writer in writers:
            writer.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(self, gate: asyncio.Semaphore, writers: list[asyncio.StreamWriter]) -> None:
        async with gate:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writers.append(writer)
                writer.write(self.request)
                received = b""
                while b"retry: 2000" not in received:
                    data = await asyncio.wait_for(reader.read(65536), 60)
                    if not data:
                        raise RuntimeError(f"closed before the stream began: {received[:200]!r}")
                    received += data
                if not received.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(received[:200].decode(errors="replace"))
            except Exception as exc:  # noqa: BLE001 - reported by start()
                self.errors.append(repr(exc))
                self.ready.set()
                return
            self.opened += 1
            if self.opened == self.count:
                self.ready.set()
        while await reader.read(65536):  # keepalives only
            pass
        if not self._stop or not self._stop.is_set():
            self.errors.append("a stream ended while idle")


def web_status(master: int, field: str) -> int:
    """The sum of a /proc/<pid>/status field (VmRSS in KiB, Threads) over the web role."""
    total = 0
    for pid in live.process_tree(master):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field + ":"):
                    total += int(line.split()[1])
    return total


def pg_sessions() -> int:
    import psycopg

    with psycopg.connect(jp.ADMIN_DSN, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [APP_NAME]
        ).fetchone()
    return int(row[0]) if row else 0


def measure(port: int, headers: dict[str, str], requests: int, master: int) -> dict[str, float]:
    times = [jp.get_once(port, headers) for _ in range(requests)]
    return {
        "times": times,  # type: ignore[dict-item]
        "pg": pg_sessions(),
        "redis": live.tcp_connections(live.process_tree(master), 6379),
        "rss": web_status(master, "VmRSS") / 1024,
        "threads": web_status(master, "Threads"),
    }


def run(args: argparse.Namespace, env: dict[str, str], procs: jp.Processes) -> dict[str, list]:
    _job, bastion, headers = jp.seed_viewers_org()
    web, port = jp.start_web(argparse.Namespace(web_conn_max_age=0), env, procs, headers)
    path = f"/api/v1/servers/{bastion.pk}/logs/stream"
    phases: dict[str, list] = {"none": [], "viewers": [], "back": []}
    for _ in range(60):  # warm both workers: imports, the key's cache entry
        jp.get_once(port, headers)
    for _ in range(args.rounds):
        phases["none"].append(measure(port, headers, args.requests, web.pid))
        viewers = IdleViewers(port, path, headers, args.viewers)
        viewers.start()
        try:
            time.sleep(2)  # attached; from here on they only wait
            phases["viewers"].append(measure(port, headers, args.requests, web.pid))
            if viewers.errors:
                raise RuntimeError(f"viewers: {viewers.errors[:1]}")
        finally:
            viewers.stop()
        closed = time.monotonic()
        baseline = phases["none"][-1]["pg"]
        while pg_sessions() > baseline and time.monotonic() - closed < 30:
            time.sleep(0.1)
        phases["back"].append(time.monotonic() - closed)
        time.sleep(2)
    procs.stop(web)
    return phases


def report(args: argparse.Namespace, phases: dict[str, list]) -> bool:
    def joined(phase: str) -> list[float]:
        return [t for sample in phases[phase] for t in sample["times"]]

    def most(phase: str, key: str) -> float:
        return max(sample[key] for sample in phases[phase])

    none, viewers = joined("none"), joined("viewers")
    # Per round, then the median: a burst of load from elsewhere on a shared machine skews one
    # round, not the verdict.
    ratio = statistics.median(
        statistics.median(v["times"]) / statistics.median(n["times"])
        for n, v in zip(phases["none"], phases["viewers"], strict=True)
    )
    pg_bound = most("none", "pg") + WORKERS * (READ_THREADS + 1)
    back = max(phases["back"])
    pg_most = most("viewers", "pg")
    goals = [
        ("API p50 ratio", f"{ratio:.2f}x", f"≤ {API_GOAL}x", ratio <= API_GOAL),
        ("PostgreSQL sessions", f"{pg_most:.0f}", f"≤ {pg_bound:.0f}", pg_most <= pg_bound),
        ("sessions back after close", f"{back:.1f} s", f"≤ {BACK_GOAL:g} s", back <= BACK_GOAL),
    ]

    def pair(key: str, unit: str = "") -> tuple[str, str]:
        return f"{most('none', key):.0f}{unit}", f"{most('viewers', key):.0f}{unit}"

    rows = [
        ("", "no viewers", f"{args.viewers} idle viewers"),
        ("GET /api/v1/servers p50", ms(statistics.median(none)), ms(statistics.median(viewers))),
        ("GET /api/v1/servers p90", ms(jp.percentile(none, 0.9)), ms(jp.percentile(viewers, 0.9))),
        ("PostgreSQL sessions (max)", *pair("pg")),
        ("Redis connections (max)", *pair("redis")),
        ("web RSS (max)", *pair("rss", " MiB")),
        ("web threads (max)", *pair("threads")),
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
    # The first round's: memory a worker freed is not always given back to the system, so
    # later rounds start higher.
    growth = (phases["viewers"][0]["rss"] - phases["none"][0]["rss"]) * 1024 / args.viewers
    print(
        f"(RSS growth per viewer, first round: {growth:.1f} KiB; "
        f"{args.rounds}x{args.requests} requests per phase; "
        "the ratio is the median of the rounds' p50 ratios)"
    )
    for name, value, goal, ok in goals:
        print(f"{name}: {value}  goal {goal}  {'ok' if ok else 'MISSED'}")
    return all(ok for *_, ok in goals)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()

    def _raise(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _raise)
    tmp_dir = tempfile.TemporaryDirectory(prefix="bench-log-viewers-")
    tmp = Path(tmp_dir.name)
    env = jp.bench_env(tmp / "unused.sh")
    env.update(
        PGAPPNAME=APP_NAME,
        JOB_LOG_STREAM_READ_THREADS=str(READ_THREADS),
        LOG_LEVEL="WARNING",
    )
    procs = jp.Processes(tmp)
    # This process seeds rows; only the web role connects as APP_NAME.
    own_env = {k: v for k, v in env.items() if k != "PGAPPNAME"}
    with tmp_dir, jp.bench_setup(env, procs, tmp, own_env=own_env):
        global live
        from tests import live

        phases = run(args, env, procs)
    return 0 if report(args, phases) else 1


if __name__ == "__main__":
    sys.exit(main())

"""P4: the full HTTP edge keeps at least 0.7x the throughput of bare Django on a hello view.

Starts two gunicorn servers (-w 2, sync) on loopback from the same code: one with every
middleware (request id, access log, security headers, CORS, client IP, the rate limiter with a
limit too high to reach — so its Redis round trip is counted —, body limit, JSON content type,
sessions, CSRF, auth, messages, frame options), one with none. Times `/bench/hello` on each,
interleaved (full, bare, full, bare, ...) in one run, and prints the throughput ratio
(bare p50 / full p50, median over rounds); exit status 1 below the target.

    .venv/bin/python benchmarks/middleware_overhead.py [--rounds 7] [--requests 400]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from auth_overhead import ROOT, _env, _free_port, _prepare

TARGET = 0.7
PATH = "/bench/hello"


def _server(port: int, **extra_env: str) -> subprocess.Popen:
    env = {**_env(), **extra_env}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "autoglue.wsgi",
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )


def _timed(port: int) -> float:
    import http.client

    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", PATH, headers={"Host": "localhost"})
    response = conn.getresponse()
    response.read()
    conn.close()
    if response.status != 200:
        raise RuntimeError(f"unexpected status {response.status}")
    return time.perf_counter() - start


def _batch(port: int, n: int, concurrency: int) -> float:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(concurrency) as pool:
        return statistics.median(pool.map(lambda _: _timed(port), range(n)))


def _wait(port: int) -> None:
    for _ in range(100):
        try:
            _timed(port)
            return
        except (OSError, RuntimeError):
            time.sleep(0.1)
    raise RuntimeError(f"server on {port} never answered")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    _prepare()
    full_port, bare_port = _free_port(), _free_port()
    servers = [
        _server(full_port, BENCH_RATE_LIMIT="100000000/m"),
        _server(bare_port, BENCH_BARE="1"),
    ]
    try:
        _wait(full_port)
        _wait(bare_port)
        _batch(full_port, 100, args.concurrency)
        _batch(bare_port, 100, args.concurrency)
        full, bare = [], []
        for _ in range(args.rounds):
            full.append(_batch(full_port, args.requests, args.concurrency))
            bare.append(_batch(bare_port, args.requests, args.concurrency))
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
    full_p50, bare_p50 = statistics.median(full), statistics.median(bare)
    ratio = bare_p50 / full_p50
    print(f"bare Django p50:      {bare_p50 * 1000:.2f} ms")
    print(f"full middleware p50:  {full_p50 * 1000:.2f} ms")
    print(f"throughput ratio:     {ratio:.3f} (target >= {TARGET})")
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())

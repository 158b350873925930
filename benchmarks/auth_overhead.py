"""P3: an API-key-authenticated request costs at most 1.15x an unauthenticated one.

Starts gunicorn (-w 2, sync) on loopback against its own database and Redis index, seeds a user
and an API key, then times the same view (`/bench/whoami`, real authentication layer, AllowAny)
without and with `X-API-KEY`, interleaved (A, B, A, B, ...) in one run. Prints the p50 of each
and the ratio (median over rounds); exit status 1 if the ratio exceeds the target. (That a key
costs at most one argon2 verification per cache period is pinned by
apps/accounts/tests/test_api_keys.py, with a spy on the hasher.)

    .venv/bin/python benchmarks/auth_overhead.py [--rounds 7] [--requests 400] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = 1.15


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "benchmarks.bench_settings"
    env.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_autoglue")
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/8")
    env["PYTHONPATH"] = str(ROOT)
    return env


def _prepare() -> str:
    """Create the database if needed, migrate, and seed a user with an API key."""
    import psycopg

    os.environ.update(_env())
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        exists = c.execute("SELECT 1 FROM pg_database WHERE datname='bench_autoglue'").fetchone()
        if not exists:
            c.execute("CREATE DATABASE bench_autoglue")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=_env(), check=True
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.cache import cache

    from apps.accounts import services
    from apps.accounts.models import User

    cache.clear()
    user = User.objects.filter(primary_email="bench@example.com").first()
    if user is None:
        user = User.objects.create_user("bench@example.com")
    return services.api_key_create_for_user(user=user, name="bench").plain


def _one(port: int, headers: dict[str, str]) -> float:
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/bench/whoami", headers={"Host": "localhost", **headers})
    response = conn.getresponse()
    response.read()
    conn.close()
    elapsed = time.perf_counter() - start
    if response.status != 200:
        raise RuntimeError(f"unexpected status {response.status}")
    return elapsed


def _batch(port: int, headers: dict[str, str], n: int, concurrency: int) -> float:
    with ThreadPoolExecutor(concurrency) as pool:
        times = list(pool.map(lambda _: _one(port, headers), range(n)))
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    key = _prepare()
    port = _free_port()
    server = subprocess.Popen(
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
        env=_env(),
    )
    try:
        for _ in range(100):
            try:
                _one(port, {})
                break
            except (OSError, RuntimeError):
                time.sleep(0.1)
        authed = {"X-API-KEY": key}
        # Warm up both paths (imports, connections, the key's cache entry in each worker).
        _batch(port, {}, 100, args.concurrency)
        _batch(port, authed, 100, args.concurrency)
        plain_p50, auth_p50 = [], []
        for _ in range(args.rounds):
            plain_p50.append(_batch(port, {}, args.requests, args.concurrency))
            auth_p50.append(_batch(port, authed, args.requests, args.concurrency))
    finally:
        server.terminate()
        server.wait(timeout=10)
    plain, auth = statistics.median(plain_p50), statistics.median(auth_p50)
    ratio = auth / plain
    print(f"unauthenticated p50: {plain * 1000:.2f} ms")
    print(f"API key p50:         {auth * 1000:.2f} ms")
    print(f"ratio:               {ratio:.3f} (target <= {TARGET})")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())

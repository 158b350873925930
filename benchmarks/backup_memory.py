"""Backups: memory stays flat whatever the size of the database.

Backs up two databases side by side in one run — a small one (the platform's tables plus about
10 MiB) and a large one (the platform's tables plus at least `--gib` GiB, 1 by default) — with
the production code path (`manage.py backup`: pg_dump -> zlib -> AES-256-GCM -> S3 multipart
upload) into a moto S3 server over HTTP on loopback. The backup runs in a child process whose
resident memory (RSS) is sampled every 20 ms: its RSS once Django and boto3 are loaded is the
baseline, and the growth is the peak minus that baseline. pg_dump's own RSS is sampled too (it is
a separate process and not ours to bound, but it is reported).

Goal: the large backup's growth stays under 50 MiB, and about equal to the small one's (the
ratio printed; memory is bounded by the part size, not by the database).

    .venv/bin/python benchmarks/backup_memory.py [--gib 1.0] [--keep]

The databases (`bench_backup_small`, `bench_backup_large`) are created on the loopback
PostgreSQL, migrated and filled on first use; `--keep` leaves them for the next run (filling a
gigabyte takes a minute or two), otherwise they are dropped at the end. Exit status 0 when the
goal is met.
"""

from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.aws import MotoServer  # noqa: E402

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
GOAL_MIB = 50
MIB = 1024 * 1024
BUCKET = "bench-backups"
ROW_BYTES = 1024


def db_dsn(name: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def child_env(name: str, moto_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "autoglue.settings",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}",
            "REDIS_URL": "redis://127.0.0.1:6379/14",
            "AUTOGLUE_ENV": "production",
            "DJANGO_SECRET_KEY": "bench-only-secret-key-not-for-production-use-0123456789",
            "DJANGO_ALLOWED_HOSTS": "localhost",
            # The test suite's fixed master key (32 bytes of 0x42); never used anywhere else.
            "AUTOGLUE_MASTER_KEYS": "test-master:QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=",
            "AUTOGLUE_BACKUP_KEYS": "bench:" + base64.b64encode(b"\x07" * 32).decode(),
            "BACKUP_S3_BUCKET": BUCKET,
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "LOG_FORMAT": "console",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def database_size(name: str) -> int:
    with psycopg.connect(db_dsn(name)) as conn:
        return int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])


def ensure_database(name: str, target_bytes: int, moto_url: str) -> int:
    """Create, migrate and fill the database until it holds `target_bytes`; its size."""
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    if not exists:
        subprocess.run(  # noqa: S603 - our own manage.py
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=child_env(name, moto_url),
            check=True,
        )
    with psycopg.connect(db_dsn(name), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_rows (id bigint PRIMARY KEY, note text, data text)"
        )
        size = database_size(name)
        start = int(conn.execute("SELECT coalesce(max(id), 0) FROM bench_rows").fetchone()[0])
        batch = 100_000
        while size < target_bytes:
            # Half text that compresses, half hex of random digests (compresses about 2:1).
            conn.execute(
                "INSERT INTO bench_rows SELECT g, repeat('row ' || g || ' ', 40), "
                "(SELECT string_agg(md5(random()::text || g || h), '') "
                " FROM generate_series(1, 16) h) "
                "FROM generate_series(%s, %s) g",
                [start + 1, start + batch],
            )
            start += batch
            size = database_size(name)
            print(f"  {name}: {size / MIB:.0f} MiB", file=sys.stderr, flush=True)  # noqa: T201
    return database_size(name)


def drop(name: str) -> None:
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


CHILD = """
import sys, django
django.setup()
from apps.maintenance import services, storage
storage.s3_client()  # a worker has loaded boto3's S3 model long before its first backup
sys.stdout.write("ready\\n"); sys.stdout.flush()
sys.stdin.readline()
backup = services.backup_create()
sys.stdout.write(f"{backup.size_bytes} {backup.dump_bytes} {backup.duration_seconds}\\n")
"""


def measure(name: str, moto_url: str) -> dict[str, float]:
    """Run one backup in a child process; its RSS baseline, peak, and the dump's figures."""
    proc = subprocess.Popen(  # noqa: S603 - this interpreter with a fixed script
        [sys.executable, "-c", CHILD],
        cwd=ROOT,
        env=child_env(name, moto_url),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin and proc.stdout  # noqa: S101
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit(f"backup child for {name} did not start")
    me = psutil.Process(proc.pid)
    baseline = me.memory_info().rss
    peak, pg_dump_peak = baseline, 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak, pg_dump_peak
        while not done.is_set():
            try:
                peak = max(peak, me.memory_info().rss)
                for child in me.children():
                    pg_dump_peak = max(pg_dump_peak, child.memory_info().rss)
            except psutil.Error:
                pass
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    result = proc.stdout.readline().split()
    done.set()
    sampler.join()
    if proc.wait() != 0 or len(result) != 3:
        raise SystemExit(f"backup of {name} failed")
    return {
        "baseline": baseline,
        "peak": peak,
        "growth": peak - baseline,
        "pg_dump_peak": pg_dump_peak,
        "object": float(result[0]),
        "dump": float(result[1]),
        "seconds": float(result[2]),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    names = {"small": "bench_backup_small", "large": "bench_backup_large"}
    with tempfile.TemporaryDirectory() as tmp:
        moto = MotoServer(Path(tmp) / "moto.log")
        try:
            import boto3

            boto3.client(
                "s3",
                endpoint_url=moto.url,
                region_name="us-east-1",
                aws_access_key_id="bench",
                aws_secret_access_key="bench",  # noqa: S106 - moto accepts any credentials
            ).create_bucket(Bucket=BUCKET)
            sizes = {
                "small": ensure_database(names["small"], 10 * MIB, moto.url),
                "large": ensure_database(names["large"], int(args.gib * 1024 * MIB), moto.url),
            }
            results = {label: measure(names[label], moto.url) for label in ("small", "large")}
        finally:
            moto.stop()
            if not args.keep:
                for name in names.values():
                    drop(name)
    print(  # noqa: T201
        f"{'database':<8} {'db size':>10} {'dump':>10} {'object':>10} {'seconds':>8} "
        f"{'RSS base':>9} {'RSS peak':>9} {'growth':>8} {'pg_dump':>8}"
    )
    for label, r in results.items():
        print(  # noqa: T201
            f"{label:<8} {sizes[label] / MIB:>8.0f}Mi {r['dump'] / MIB:>8.0f}Mi "
            f"{r['object'] / MIB:>8.0f}Mi {r['seconds']:>8.1f} "
            f"{r['baseline'] / MIB:>7.0f}Mi {r['peak'] / MIB:>7.0f}Mi "
            f"{r['growth'] / MIB:>6.1f}Mi {r['pg_dump_peak'] / MIB:>6.0f}Mi"
        )
    large, small = results["large"], results["small"]
    size_ratio = sizes["large"] / sizes["small"]
    growth_ratio = large["growth"] / max(small["growth"], MIB)
    print(  # noqa: T201
        f"database size large/small: {size_ratio:.0f}x; RSS growth large/small: "
        f"{growth_ratio:.2f}x; growth/db size (large): {large['growth'] / sizes['large']:.4f}"
    )
    ok = sizes["large"] >= args.gib * 1024 * MIB and large["growth"] < GOAL_MIB * MIB
    print(  # noqa: T201
        f"goal: growth under {GOAL_MIB} MiB on a >= {args.gib} GiB database: "
        f"{'met' if ok else 'NOT met'} ({large['growth'] / MIB:.1f} MiB)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Audited writes under concurrency: one organization against many, record sets against labels,
and deadlocks on one node pool (issue 20, points 3 and 4).

Starts gunicorn (threaded workers, so requests really overlap in PostgreSQL) on loopback against
its own database (`bench_auditchain`, created and dropped here) and Redis index, seeds one user
with an API key who owns `--clients` organizations (and a domain in the first), then, in rounds,
interleaved, has `--clients` clients each send `--requests` writes:

- labels, one org: every client creates labels in the same organization (one audit chain);
- labels, spread: client i creates labels in organization i (a chain each);
- record sets, one domain: every client creates record sets in the same domain.

Prints the throughput of each (median over rounds) and the ratios one-org / spread (goal
>= 0.8) and record sets / labels one org (goal >= 0.7), each the median of the per-round
ratios. Then `--pool-rounds` times it sends an attach, a PATCH, a detach, a re-attach and a
DELETE of one node pool at once and counts PostgreSQL's deadlocks (pg_stat_database) and 5xx
answers (goal: none). Exit status 0 when every goal is met.

    .venv/bin/python benchmarks/audit_contention.py [--clients 24] [--requests 15] [--rounds 5]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PG = "postgresql://postgres@127.0.0.1:5432"
DB_NAME = "bench_auditchain"
SPREAD_TARGET = 0.8
RECORDS_TARGET = 0.7


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "benchmarks.bench_settings"
    env["DATABASE_URL"] = f"{PG}/{DB_NAME}"
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/7")
    # Jobs (the DNS reconcile a record-set write queues) are published, never run in-process.
    env["BENCH_CELERY_EAGER"] = "0"
    env["PYTHONPATH"] = str(ROOT)
    return env


def _database(action: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        if action == "create":
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def _deadlocks() -> int:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = %s", [DB_NAME]
        ).fetchone()
    return int(row[0]) if row else 0


def _seed(clients: int) -> tuple[str, list[str], str]:
    """The API key, the organization ids, and the id of the domain in the first one."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=_env(), check=True
    )
    os.environ.update(_env())
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from apps.accounts import services as accounts
    from apps.accounts.models import User
    from apps.dns.tests.factories import DomainFactory
    from apps.orgs import services as orgs

    user = User.objects.create_user("bench-audit@example.com")
    key = accounts.api_key_create_for_user(user=user, name="bench").plain
    org_ids, first = [], None
    for index in range(clients):
        org = orgs.organization_create(creator=user, name=f"bench-{index}")
        org_ids.append(str(org.pk))
        first = first or org
    domain = DomainFactory(organization=first)
    return key, org_ids, str(domain.pk)


class Client:
    """One keep-alive connection acting in one organization."""

    def __init__(self, port: int, key: str, org_id: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {
            "Host": "localhost",
            "X-API-KEY": key,
            "X-Org-ID": org_id,
            "Content-Type": "application/json",
        }

    def send(self, method: str, path: str, body: Any = None) -> int:
        data = None if body is None else json.dumps(body)
        self.conn.request(method, path, body=data, headers=self.headers)
        response = self.conn.getresponse()
        response.read()
        return response.status

    def close(self) -> None:
        self.conn.close()


def _scenario(port: int, key: str, org_ids: list[str], domain_id: str, kind: str, n: int) -> float:
    """Writes per second with every client sending `n` writes at once; raises on a non-201."""
    clients = len(org_ids)
    barrier = threading.Barrier(clients + 1)
    failures: Counter[int] = Counter()

    def work(index: int) -> None:
        org = org_ids[0] if kind != "spread" else org_ids[index]
        client = Client(port, key, org)
        try:
            barrier.wait()
            for _ in range(n):
                tag = uuid.uuid4().hex[:12]
                if kind == "records":
                    status = client.send(
                        "POST",
                        f"/api/v1/dns/domains/{domain_id}/records",
                        {"name": f"r{tag}", "type": "A", "values": ["192.0.2.10"]},
                    )
                else:
                    status = client.send(
                        "POST", "/api/v1/labels", {"key": f"bench.example/{tag}", "value": "x"}
                    )
                if status != 201:
                    failures[status] += 1
        finally:
            client.close()

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(work, i) for i in range(clients)]
        barrier.wait()
        start = time.perf_counter()
        for future in futures:
            future.result()
        elapsed = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"{kind}: unexpected answers {dict(failures)}")
    return clients * n / elapsed


def _pool_rounds(port: int, key: str, org_id: str, rounds: int) -> Counter[int]:
    """Attach, PATCH, detach, re-attach and DELETE of one node pool at once, `rounds` times."""
    from apps.clusters.models import Label, NodePool, NodePoolLabel

    statuses: Counter[int] = Counter()
    for round_ in range(rounds):
        pool = NodePool.objects.create(organization_id=org_id, name=f"pool-{round_}")
        labels = [
            Label.objects.create(
                organization_id=org_id, key=f"pool.example/{round_}-{i}", value="x"
            )
            for i in range(8)
        ]
        for label in labels[:4]:
            NodePoolLabel.objects.create(organization_id=org_id, node_pool=pool, label=label)
        base = f"/api/v1/node-pools/{pool.pk}"
        calls = [
            ("POST", f"{base}/labels", {"label_ids": [str(x.pk) for x in labels[4:]]}),
            ("PATCH", base, {"name": f"renamed-{round_}"}),
            ("DELETE", f"{base}/labels/{labels[0].pk}", None),
            ("POST", f"{base}/labels", {"label_ids": [str(labels[1].pk)]}),
            ("DELETE", base, None),
        ]
        barrier = threading.Barrier(len(calls))

        def send(call: tuple[str, str, Any], barrier: threading.Barrier = barrier) -> int:
            client = Client(port, key, org_id)
            try:
                barrier.wait()
                return client.send(*call)
            finally:
                client.close()

        with ThreadPoolExecutor(len(calls)) as executor:
            statuses.update(executor.map(send, calls))
    return statuses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=24)
    parser.add_argument("--requests", type=int, default=15, help="writes per client per run")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pool-rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=16, help="gunicorn threads per worker")
    args = parser.parse_args()

    _database("create")
    server = None
    try:
        key, org_ids, domain_id = _seed(args.clients)
        port = _free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "autoglue.wsgi",
                "-k",
                "gthread",
                "-w",
                "2",
                "--threads",
                str(args.threads),
                "-b",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
            ],
            cwd=ROOT,
            env=_env(),
        )
        for _ in range(200):
            try:
                Client(port, key, org_ids[0]).send("GET", "/api/v1/labels")
                break
            except OSError:
                time.sleep(0.1)
        # Warm up every worker thread's connections and imports.
        for kind in ("one", "spread", "records"):
            _scenario(port, key, org_ids, domain_id, kind, 3)
        results: dict[str, list[float]] = {"one": [], "spread": [], "records": []}
        kinds = list(results)
        for round_ in range(args.rounds):
            # Each round starts with the next scenario, so none always runs first or last.
            for kind in kinds[round_ % 3 :] + kinds[: round_ % 3]:
                results[kind].append(_scenario(port, key, org_ids, domain_id, kind, args.requests))
        before = _deadlocks()
        statuses = _pool_rounds(port, key, org_ids[0], args.pool_rounds)
        time.sleep(1.5)  # PostgreSQL publishes its counters at most once a second
        deadlocks = _deadlocks() - before
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        from django.db import connections

        connections.close_all()
        _database("drop")

    one, spread, records = (statistics.median(results[k]) for k in ("one", "spread", "records"))
    # Ratios per round (runs minutes apart on a shared machine see different loads), then the
    # median over rounds.
    by_round = list(zip(results["one"], results["spread"], results["records"], strict=True))
    spread_ratio = statistics.median(o / s for o, s, _ in by_round)
    records_ratio = statistics.median(r / o for o, _, r in by_round)
    print(f"clients: {args.clients}, writes per client per run: {args.requests}")
    print(f"labels, one org:         {one:8.1f} writes/s")
    print(f"labels, spread:          {spread:8.1f} writes/s")
    print(f"record sets, one domain: {records:8.1f} writes/s")
    print(f"one org / spread:        {spread_ratio:.3f} (target >= {SPREAD_TARGET})")
    print(f"record sets / labels:    {records_ratio:.3f} (target >= {RECORDS_TARGET})")
    errors = sum(count for status, count in statuses.items() if status >= 500)
    print(
        f"node pool rounds: {args.pool_rounds}, answers {dict(sorted(statuses.items()))}, "
        f"deadlocks {deadlocks}, 5xx {errors}"
    )
    met = (
        spread_ratio >= SPREAD_TARGET
        and records_ratio >= RECORDS_TARGET
        and deadlocks == 0
        and errors == 0
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

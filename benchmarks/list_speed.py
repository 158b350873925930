"""P1: a list endpoint costs at most 2x (50 rows) and 3x (500 rows) the same page read with
raw SQL through the same stack, for the server list and the cluster list.

Runs the web role as deployed — gunicorn with uvicorn workers (-w 2), the production settings
module with AUTOGLUE_ENV=production, JSON logs at INFO written to a file, the rate limiter on
(a limit too high to reach, so its Redis round trip is counted), TLS terminated by a proxy
(`X-Forwarded-Proto: https`) — against real PostgreSQL and Redis. The only addition to the
production URLconf is two raw-SQL views (benchmarks/list_speed_views.py) behind the same
middleware, authentication and role check, which answer the very same JSON (checked before
timing).

The script creates its own database (dropped at the end), seeds one organization per list and
size (50 or 500 servers; 50 or 500 clusters, each with two node pools of two servers and a
label, a taint and an annotation, a bastion, two load balancers, a captain domain, a
control-plane record set and two metadata entries), and signs in with a member's user API key.
Then, per round, each list and its floor are timed back to back (A, B, A, B, ...); the ratio is
the median over rounds of p50(list) / p50(floor), which stays meaningful on a busy machine.

    .venv/bin/python benchmarks/list_speed.py [--rounds 7] [--sizes 50,500] [--keep-db]

`--profile clusters:500` skips the timing and instead profiles that list in-process (same
settings, same middleware, Django's test client instead of gunicorn) with pyinstrument, which
is not a requirement: `.venv/bin/pip install pyinstrument` first. With BENCH_CPROFILE=1 it uses
cProfile with CPU time instead (robust to a busy machine). Results: docs/performance.md.

Exit status 0 when every ratio meets its goal.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = os.environ.get("BENCH_DB_NAME", "autoglue_bench_speed")
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
GOALS = {50: 2.0, 500: 3.0}
LISTS = {"servers": "/api/v1/servers", "clusters": "/api/v1/clusters"}
FLOORS = {"servers": "/bench/raw/servers", "clusters": "/bench/raw/clusters"}
# Requests per timed batch: enough for a stable median, few enough for big pages.
REQUESTS = {50: 40, 500: 12}
CONCURRENCY = 2
# The benchmark signs in as a member. `BENCH_ROLE=owner` with --profile shows what an owner's
# (or an org key's) cluster list adds: the join secrets, decrypted per cluster. The floor does
# not decrypt, so timing runs refuse any other role.
ROLE = os.environ.get("BENCH_ROLE", "member")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def production_env() -> dict[str, str]:
    """The environment of a production web process, pointed at the benchmark database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "AUTOGLUE_"))}
    master = base64.b64encode(secrets.token_bytes(32)).decode()
    env.update(
        DJANGO_SETTINGS_MODULE="benchmarks.list_speed_settings",
        PYTHONPATH=str(ROOT),
        AUTOGLUE_ENV="production",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="localhost,127.0.0.1",
        DATABASE_URL=f"{PG}/{DB_NAME}",
        REDIS_URL=REDIS_URL,
        AUTOGLUE_MASTER_KEYS=f"bench:{master}",
        SECURE_PROXY_SSL_HEADER="true",
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        # Limits too high to reach: the limiter's round trip is counted, never a 429.
        RATE_LIMIT="100000000/m",
        RATE_LIMIT_USER="100000000/m",
        RATE_LIMIT_KEY="100000000/m",
    )
    return env


def _create_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def _drop_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def _seed(sizes: list[int]) -> tuple[str, dict[tuple[str, int], str]]:
    """Seeds the organizations; returns the API key and the org id of each (list, size)."""
    import django

    sys.path.insert(0, str(ROOT))
    django.setup()
    from django.core.cache import cache
    from django.db import connection, transaction

    from apps.accounts import services as accounts
    from apps.accounts.models import User
    from apps.clusters.models import (
        Annotation,
        Cluster,
        ClusterMetadata,
        ClusterNodePool,
        Label,
        NodePool,
        NodePoolAnnotation,
        NodePoolLabel,
        NodePoolServer,
        NodePoolTaint,
        Taint,
    )
    from apps.dns.models import Domain, RecordSet
    from apps.infrastructure.models import LoadBalancer, Server
    from apps.infrastructure.tests.factories import CredentialFactory, SSHKeyFactory
    from apps.orgs.models import Membership, Organization

    cache.clear()
    user = User.objects.create_user("bench-lists@example.com")
    key = accounts.api_key_create_for_user(user=user, name="bench").plain
    orgs: dict[tuple[str, int], str] = {}

    def server(org: Organization, ssh_key, n: int, role: str = "worker") -> Server:
        return Server(
            organization=org,
            ssh_key=ssh_key,
            hostname=f"node-{n}",
            private_ip_address=f"10.{n // 62500}.{n // 250 % 250}.{n % 250 + 1}",
            public_ip_address=f"203.0.{n // 250 % 250}.{n % 250 + 1}" if n % 2 else None,
            ssh_user="ubuntu",
            role=role,
            status="ready",
        )

    with transaction.atomic():
        for size in sizes:
            org = Organization.objects.create(name=f"servers-{size}")
            Membership.objects.create(user=user, organization=org, role=ROLE)
            ssh_key = SSHKeyFactory(organization=org)
            Server.objects.bulk_create(server(org, ssh_key, n) for n in range(size))
            orgs[("servers", size)] = str(org.pk)

            org = Organization.objects.create(name=f"clusters-{size}")
            Membership.objects.create(user=user, organization=org, role=ROLE)
            ssh_key = SSHKeyFactory(organization=org)
            credential = CredentialFactory(organization=org)
            labels = Label.objects.bulk_create(
                Label(organization=org, key=f"example.com/tier-{n}", value="backend")
                for n in range(3)
            )
            taints = Taint.objects.bulk_create(
                Taint(organization=org, key=f"dedicated-{n}", value="gpu", effect="NoSchedule")
                for n in range(2)
            )
            notes = Annotation.objects.bulk_create(
                Annotation(organization=org, key=f"example.com/note-{n}", value="free text")
                for n in range(2)
            )
            servers = Server.objects.bulk_create(
                server(org, ssh_key, n, "bastion" if n % 5 == 4 else "worker")
                for n in range(size * 5)
            )
            domains = Domain.objects.bulk_create(
                Domain(
                    organization=org,
                    domain_name=f"zone{n}.example.com",
                    zone_id=f"Z{n:012d}",
                    credential=credential,
                )
                for n in range(size)
            )
            record_sets = RecordSet.objects.bulk_create(
                RecordSet(
                    organization=org,
                    domain=domain,
                    name="api",
                    type="A",
                    ttl=300,
                    values=["203.0.113.20"],
                    owner="autoglue",
                )
                for domain in domains
            )
            lbs = LoadBalancer.objects.bulk_create(
                LoadBalancer(
                    organization=org,
                    name=f"lb-{n}",
                    kind="public" if n % 2 else "glueops",
                    public_ip_address="203.0.113.10" if n % 2 else None,
                    private_ip_address="10.1.0.10",
                )
                for n in range(size * 2)
            )
            clusters = Cluster.objects.bulk_create(
                Cluster(
                    organization=org,
                    name=f"cluster-{n}",
                    provider="hetzner",
                    region="fsn1",
                    docker_image="ghcr.io/glueops/cluster-tools",
                    docker_tag="v1.0.0",
                    random_token=f"token-{n}",
                    certificate_key=f"certkey-{n}",
                    captain_domain=domains[n],
                    control_plane_record_set=record_sets[n],
                    apps_load_balancer=lbs[2 * n + 1],
                    glueops_load_balancer=lbs[2 * n],
                    bastion_server=servers[5 * n + 4],
                )
                for n in range(size)
            )
            pools = NodePool.objects.bulk_create(
                NodePool(
                    organization=org,
                    name=f"pool-{n}",
                    role="master" if n % 2 == 0 else "worker",
                )
                for n in range(size * 2)
            )
            ClusterNodePool.objects.bulk_create(
                ClusterNodePool(organization=org, cluster=clusters[n // 2], node_pool=pool)
                for n, pool in enumerate(pools)
            )
            NodePoolServer.objects.bulk_create(
                NodePoolServer(organization=org, node_pool=pool, server=servers[5 * (n // 2) + j])
                for n, pool in enumerate(pools)
                for j in ((0, 1) if n % 2 == 0 else (2, 3))
            )
            NodePoolLabel.objects.bulk_create(
                NodePoolLabel(organization=org, node_pool=pool, label=labels[n % 3])
                for n, pool in enumerate(pools)
            )
            NodePoolTaint.objects.bulk_create(
                NodePoolTaint(organization=org, node_pool=pool, taint=taints[n % 2])
                for n, pool in enumerate(pools)
            )
            NodePoolAnnotation.objects.bulk_create(
                NodePoolAnnotation(organization=org, node_pool=pool, annotation=notes[n % 2])
                for n, pool in enumerate(pools)
            )
            ClusterMetadata.objects.bulk_create(
                ClusterMetadata(organization=org, cluster=cluster, key=k, value=f"{k}-value")
                for cluster in clusters
                for k in ("environment", "owner")
            )
            orgs[("clusters", size)] = str(org.pk)

        # Distinct timestamps, so "newest first" is one order for the ORM and the raw SQL.
        with connection.cursor() as cursor:
            for table in (
                "infrastructure_server",
                "infrastructure_loadbalancer",
                "dns_domain",
                "dns_recordset",
                "clusters_cluster",
                "clusters_nodepool",
                "clusters_label",
                "clusters_taint",
                "clusters_annotation",
                "clusters_clustermetadata",
            ):
                cursor.execute(
                    f"UPDATE {table} t SET created_at = s.at, updated_at = s.at "  # noqa: S608
                    "FROM (SELECT id, now() - row_number() OVER (ORDER BY id) * %s AS at "
                    f"FROM {table}) s WHERE t.id = s.id",
                    [timedelta(seconds=1)],
                )
    connection.close()
    return key, orgs


def _get(port: int, path: str, headers: dict[str, str]) -> tuple[float, bytes]:
    start = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request("GET", path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    elapsed = time.perf_counter() - start
    if response.status != 200:
        raise RuntimeError(f"GET {path}: {response.status} {body[:300]!r}")
    return elapsed, body


def _batch(port: int, path: str, headers: dict[str, str], n: int) -> float:
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        return statistics.median(pool.map(lambda _: _get(port, path, headers)[0], range(n)))


def _start(env: dict[str, str], log: Path, workers: int = 2) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    with log.open("wb") as out:
        server = subprocess.Popen(  # noqa: S603 - our own interpreter
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                str(ROOT / "autoglue" / "gunicorn_conf.py"),
                "autoglue.asgi",
                "--worker-class",
                "autoglue.workers.UvicornWorker",
                "--workers",
                str(workers),
                "--bind",
                f"127.0.0.1:{port}",
                "--access-logfile",
                "/dev/null",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    for _ in range(300):
        try:
            _get(port, "/api/v1/healthz", {"Host": "localhost", "X-Forwarded-Proto": "https"})
            return server, port
        except (OSError, RuntimeError):
            if server.poll() is not None:
                break
            time.sleep(0.1)
    server.terminate()
    raise RuntimeError("gunicorn did not start:\n" + log.read_text(errors="replace")[-3000:])


def _profile(spec: str, key: str, orgs: dict[tuple[str, int], str], requests: int) -> None:
    """Profiles one list in this process: where a request's time goes, per request."""
    import logging

    from django.test import Client
    from pyinstrument import Profiler

    name, size = spec.split(":")
    path = {**LISTS, **{f"raw-{k}": v for k, v in FLOORS.items()}}[name]
    org = orgs[(name.removeprefix("raw-"), int(size))]
    # The access log stays on, as deployed, but writes to a file instead of this terminal.
    log = Path(tempfile.mkstemp(prefix="list-profile-", suffix=".log")[1])
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(log.open("a"))
    client = Client(
        HTTP_HOST="localhost", HTTP_X_API_KEY=key, HTTP_X_ORG_ID=org, HTTP_X_FORWARDED_PROTO="https"
    )
    for _ in range(3):
        assert client.get(path, secure=True).status_code == 200  # noqa: S101 - a script
    if os.environ.get("BENCH_CPROFILE"):
        # CPU time per function (own and cumulative), robust to a busy machine.
        import cProfile
        import pstats

        cprofile = cProfile.Profile(time.process_time)
        cprofile.enable()
        for _ in range(requests):
            client.get(path, secure=True)
        cprofile.disable()
        stats = pstats.Stats(cprofile).strip_dirs()
        stats.sort_stats("tottime").print_stats(35)
        stats.sort_stats("cumulative").print_stats(60)
        return
    profiler = Profiler(interval=0.0005)
    profiler.start()
    for _ in range(requests):
        client.get(path, secure=True)
    profiler.stop()
    log.unlink(missing_ok=True)
    print(profiler.output_text(unicode=True, color=False, show_all=False))
    # Where the time is spent, by function (own time), summed over every call site.
    print(profiler.output_text(unicode=True, color=False, flat=True)[:6000])


def _same_pages(port: int, cases: list, headers: dict) -> bool:
    """Both routes answer the same page (also warms every path in both workers)."""
    for case in cases:
        for _ in range(4):
            api = json.loads(_get(port, LISTS[case[0]], headers[case])[1])
            raw = json.loads(_get(port, FLOORS[case[0]], headers[case])[1])
        if api != raw or len(api) != case[1]:
            print(f"{case}: the floor's body differs from the list's", file=sys.stderr)
            return False
    return True


def _measure(port: int, cases: list, headers: dict, rounds: int) -> dict:
    """Per round and case: p50 of the list, p50 of its floor, back to back."""
    results: dict = {case: ([], [], []) for case in cases}
    for _ in range(rounds):
        for case in cases:
            n = REQUESTS.get(case[1], 20)
            api_p50 = _batch(port, LISTS[case[0]], headers[case], n)
            raw_p50 = _batch(port, FLOORS[case[0]], headers[case], n)
            results[case][0].append(api_p50)
            results[case][1].append(raw_p50)
            results[case][2].append(api_p50 / raw_p50)
    return results


def _report(cases: list, results: dict) -> bool:
    ok = True
    print(f"{'list':<10} {'rows':>5} {'list p50':>10} {'raw p50':>10} {'ratio':>7} {'goal':>6}")
    for case in cases:
        api_p50, raw_p50 = statistics.median(results[case][0]), statistics.median(results[case][1])
        ratio = statistics.median(results[case][2])
        goal = GOALS.get(case[1], 3.0)
        ok &= ratio <= goal
        print(
            f"{case[0]:<10} {case[1]:>5} {api_p50 * 1000:>8.1f}ms {raw_p50 * 1000:>8.1f}ms "
            f"{ratio:>7.2f} {'<=' + str(goal):>6}{'' if ratio <= goal else '  MISSED'}"
        )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--sizes", default="50,500")
    parser.add_argument("--keep-db", action="store_true", help="leave the database behind")
    parser.add_argument("--profile", metavar="LIST:SIZE", help="e.g. clusters:500, raw-servers:50")
    parser.add_argument("--profile-requests", type=int, default=20)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.profile:
        sizes = [int(args.profile.split(":")[1])]

    if ROLE != "member" and not args.profile:
        parser.error("BENCH_ROLE is for --profile only (the floor shows no secrets)")
    env = production_env()
    os.environ.update(env)
    _create_database()
    server = None
    log = Path(tempfile.mkstemp(prefix="list-speed-", suffix=".log")[1])
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True
        )
        key, orgs = _seed(sizes)
        if args.profile:
            _profile(args.profile, key, orgs, args.profile_requests)
            return 0
        server, port = _start(env, log)
        cases = [(name, size) for name in LISTS for size in sizes]
        headers = {
            (name, size): {
                "Host": "localhost",
                "X-Forwarded-Proto": "https",
                "X-API-KEY": key,
                "X-Org-ID": orgs[(name, size)],
            }
            for name, size in cases
        }
        if not _same_pages(port, cases, headers):
            return 2
        results = _measure(port, cases, headers, args.rounds)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        log.unlink(missing_ok=True)
        if not args.keep_db:
            _drop_database()

    ok = _report(cases, results)
    access = [line for line in lines if '"http_request"' in line]
    print(f"(rounds: {args.rounds}; JSON access-log lines written: {len(access)})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

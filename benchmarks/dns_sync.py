"""DNS reconcile: Route 53 calls for 10,000 record sets in one zone, next to the fewest Route 53's
limits allow (P5 in the reliability and performance bar).

A moto server (started here, on a free loopback port) plays Route 53; a counting proxy in front
of it sees every HTTP call our boto3 client makes, by operation. A throwaway PostgreSQL database
(`bench_dns_<pid>`, dropped at the end) holds one organization, one domain and N record sets
(A records). Three reconciles run in-process through the real service:

1. first sync: the zone is empty, every record set (with its marker and two external-dns
   guards) is created;
2. no-op: nothing changed; goal zero change calls;
3. 1% change: 1% of the record sets get a new address.

For each: ListResourceRecordSets calls against ceil(record sets in the zone / 300), and
ChangeResourceRecordSets calls against max(ceil(E / 1000), ceil(C / 32000)) where E and C are
the change set's ResourceRecord elements and value characters, UPSERT counted twice (the
bound is computed from the same changes, read from moto directly so those reads are not
counted). Goal: within 5% of the bound, zero change calls on the no-op; exit status 0 if met.

    .venv/bin/python benchmarks/dns_sync.py [--records 10000]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = "postgresql://postgres@127.0.0.1:5432"
DB_NAME = f"bench_dns_{os.getpid()}"
GOAL = 1.05


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="autoglue.test_settings",
        DATABASE_URL=f"{PG.replace('postgresql', 'postgres')}/{DB_NAME}",
        REDIS_URL="redis://127.0.0.1:6379/12",
    )
    return env


def _database(create: bool) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        if create:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def _seed(zone_id: str, count: int):  # noqa: ANN202 - Django models exist only after setup
    from apps.dns.models import Domain, RecordSet
    from apps.dns.services import record_fingerprint
    from apps.infrastructure import registry
    from apps.infrastructure.tests.factories import CredentialFactory
    from apps.orgs.tests.factories import OrganizationFactory

    org = OrganizationFactory(name="bench-dns")
    scope = {"service": "route53"}
    credential = CredentialFactory(
        organization=org,
        scope_kind="service",
        scope=scope,
        scope_fingerprint=registry.scope_fingerprint(scope),
    )
    domain = Domain.objects.create(
        organization=org,
        domain_name="bench.example.com",
        zone_id=zone_id,
        zone_name="bench.example.com",
        status=Domain.Status.READY,
        credential=credential,
    )
    records = []
    for i in range(count):
        record = RecordSet(
            organization=org,
            domain=domain,
            name=f"host{i:05d}",
            type="A",
            ttl=300,
            values=[f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"],
            owner=RecordSet.Owner.AUTOGLUE,
        )
        record.fingerprint = record_fingerprint(
            zone_id=zone_id,
            domain_name=domain.domain_name,
            name=record.name,
            rtype="A",
            ttl=300,
            values=record.values,
        )
        records.append(record)
    RecordSet.objects.bulk_create(records, batch_size=2000)
    return domain


def _measure(label: str, domain, proxy, direct) -> tuple[bool, str]:  # noqa: ANN001
    """One reconcile through the proxy; its calls next to the bounds for the same changes."""
    from apps.dns import reconcile, services

    # The bound, from the zone read straight from moto (not counted) and the same planner.
    rrsets = list(direct.list_rrsets(domain.zone_id))
    plan, _, _ = services._compute(domain, services._domain_records(domain), rrsets)
    list_bound = max(1, math.ceil(len(rrsets) / 300))
    change_bound = reconcile.lower_bound(plan.changes)

    proxy.reset_counts()
    lines: list[str] = []
    started = time.perf_counter()
    result = services.domain_reconcile(domain_id=domain.pk, log=lines.append)
    wall = time.perf_counter() - started
    lists = proxy.calls["ListResourceRecordSets"]
    changes = proxy.calls["ChangeResourceRecordSets"]
    other = sum(proxy.calls.values()) - lists - changes
    if change_bound:
        ok = lists <= list_bound and changes <= GOAL * change_bound
        ratio = f"{changes / change_bound:.3f}"
    else:
        ok = lists <= list_bound and changes == 0
        ratio = "ok" if changes == 0 else "FAIL"
    row = (
        f"{label:<12} {lists:>6} / {list_bound:<6} {changes:>7} / {change_bound:<7} "
        f"{ratio:>7} {other:>6} {result.get('changes', 0):>8} {wall:>8.1f} "
        f"{proxy.upstream_seconds:>8.1f}"
    )
    return ok, row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--records", type=int, default=10_000)
    args = parser.parse_args()

    os.environ.update(_env())
    sys.path.insert(0, str(ROOT))
    from tests.aws import MotoServer

    moto_log = Path(f"/tmp/bench-dns-moto-{os.getpid()}.log")  # noqa: S108 - a local log file
    moto = MotoServer(moto_log)
    _database(create=True)
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=_env(), check=True
        )
        import django

        django.setup()
        import boto3

        from apps.dns.clients import Route53Client
        from apps.dns.models import RecordSet
        from apps.dns.services import record_fingerprint
        from apps.dns.tests.route53_proxy import Route53Proxy

        proxy = Route53Proxy(moto.url)
        os.environ["AWS_ENDPOINT_URL"] = moto.url
        boto = boto3.client(
            "route53",
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",  # noqa: S106 - moto accepts any key
        )
        zone_id = boto.create_hosted_zone(
            Name="bench.example.com", CallerReference=uuid.uuid4().hex
        )["HostedZone"]["Id"].rsplit("/", 1)[-1]
        # Created now, while AWS_ENDPOINT_URL is moto: the bound's reads are not counted. The
        # reconciles create their own clients, which take the Route 53 override: the proxy.
        direct = Route53Client(access_key_id="bench", secret_access_key="bench")  # noqa: S106
        os.environ["AWS_ENDPOINT_URL_ROUTE_53"] = proxy.url

        domain = _seed(zone_id, args.records)
        print(f"{args.records} record sets (A) in one zone; each also has a marker TXT and two")
        print("external-dns guard TXTs. Calls measured at the HTTP boundary; bounds from")
        print("Route 53's limits (300 rrsets per list page; 1,000 records / 32,000 characters")
        print("per change batch, UPSERT counted twice). 'moto s': time spent inside moto, whose")
        print("own cost grows with the zone (it scans its change journal per change).\n")
        print(
            f"{'run':<12} {'list calls':>15} {'change calls':>17} {'ratio':>7} {'other':>6} "
            f"{'changes':>8} {'wall s':>8} {'moto s':>8}"
        )
        results = []

        def run(label: str) -> None:
            ok, row = _measure(label, domain, proxy, direct)
            results.append(ok)
            print(row, flush=True)

        run("first sync")
        run("no-op")
        changed = list(RecordSet.objects.filter(domain=domain).order_by("name"))[::100]
        for record in changed:
            record.values = ["192.0.2.1"]
            record.fingerprint = record_fingerprint(
                zone_id=zone_id,
                domain_name=domain.domain_name,
                name=record.name,
                rtype="A",
                ttl=300,
                values=record.values,
            )
            record.status = RecordSet.Status.PENDING
        RecordSet.objects.bulk_update(changed, ["values", "fingerprint", "status"])
        run(f"{len(changed)} changed")
        met = all(results)
        print(
            f"\ngoal (list <= bound, change <= {GOAL} x bound, 0 on no-op): "
            f"{'met' if met else 'NOT met'}"
        )
        proxy.close()
        return 0 if met else 1
    finally:
        from django.db import connections

        connections.close_all()
        _database(create=False)
        moto.stop()


if __name__ == "__main__":
    sys.exit(main())

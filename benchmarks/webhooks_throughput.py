"""Webhook deliveries: 10,000 events to 10 endpoints (100,000 deliveries) through real Celery
workers on the `webhooks` queue, to 10 loopback receivers that verify every signature with the
`standardwebhooks` library and count each `webhook-id`.

A throwaway PostgreSQL database (`bench_webhooks_<pid>`, dropped at the end) holds one
organization and its 10 endpoints; the events are written as a burst, 100 per transaction, each
with its 10 deliveries (the outbox path of every real event: `webhook_event_record`), their
first attempts published on commit. Two worker processes (prefork, `--concurrency` each) deliver.

Reported: deliveries per second (from the first event written to the last delivery done), and
the p50 / p95 delay from an event to its first attempt. With a burst, that delay is mostly the
queue draining: p95 is about 0.95 x deliveries / throughput. Goals, for two cores: at least 20
deliveries/s (one delivery costs about a dozen SQL statements and an unwrap of the endpoint's
data key), p95 event -> first attempt under 95 minutes (the 100,000-delivery burst drained at
that rate), every delivery succeeded, no bad signature, and each receiver saw every event's id.
Exit status 0 if every goal is met, 1 otherwise (MISSED).

    .venv/bin/python benchmarks/webhooks_throughput.py [--events 10000] [--endpoints 10]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG = "postgresql://postgres@127.0.0.1:5432"
DB_NAME = f"bench_webhooks_{os.getpid()}"
REDIS_URL = os.environ.get("BENCH_WEBHOOKS_REDIS_URL", "redis://127.0.0.1:6379/15")
GOAL_PER_SECOND = 20.0
GOAL_P95_SECONDS = 95 * 60.0
BATCH = 100


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="autoglue.test_settings",
        DATABASE_URL=f"{PG.replace('postgresql', 'postgres')}/{DB_NAME}",
        REDIS_URL=REDIS_URL,
    )
    return env


def _database(create: bool) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        if create:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def report(args: argparse.Namespace, figures: dict[str, float]) -> bool:
    """Print the figures and the verdict; True when every goal is met."""
    expected = args.events * args.endpoints
    print(f"events {args.events} x endpoints {args.endpoints} = {expected} deliveries")
    print(
        f"succeeded {figures['succeeded']:.0f}, receivers saw {figures['unique']:.0f} "
        f"distinct (event, endpoint) ids in {figures['requests']:.0f} requests, "
        f"bad signatures {figures['bad']:.0f}"
    )
    print(
        f"throughput {figures['per_second']:.1f} deliveries/s over {figures['seconds']:.1f} s "
        f"(goal >= {GOAL_PER_SECOND:.0f})"
    )
    print(
        f"event -> first attempt: p50 {figures['p50']:.1f} s, p95 {figures['p95']:.1f} s "
        f"(goal p95 < {GOAL_P95_SECONDS:.0f} s)"
    )
    missed = []
    if figures["per_second"] < GOAL_PER_SECOND:
        missed.append("throughput")
    if not figures["p95"] < GOAL_P95_SECONDS:
        missed.append("p95 delay")
    if figures["succeeded"] != expected or figures["unique"] != expected:
        missed.append("every delivery once")
    if figures["bad"]:
        missed.append("signatures")
    print("MISSED: " + ", ".join(missed) if missed else "goals met")
    return not missed


def _run(args: argparse.Namespace) -> dict[str, float]:
    import django

    django.setup()
    from django.conf import settings
    from django.db import transaction
    from django.db.models import F

    from apps.orgs.tests.factories import OrganizationFactory
    from apps.webhooks import services
    from apps.webhooks.models import WebhookAttempt, WebhookDelivery
    from apps.webhooks.tests.receiver import receiver_running
    from tests import live

    settings.JOBS_PUBLISH = True
    settings.WEBHOOK_ALLOW_HTTP = True
    org = OrganizationFactory(name="bench-webhooks")
    receivers, contexts, endpoints = [], [], []
    for _ in range(args.endpoints):
        context = receiver_running()
        receiver = context.__enter__()
        contexts.append(context)
        endpoint, secret = services.webhook_endpoint_create(organization=org, url=receiver.url)
        receiver.secrets.append(secret)
        receivers.append(receiver)
        endpoints.append(endpoint)
    env = live.process_env(WEBHOOK_ALLOW_HTTP="true", LOG_LEVEL="ERROR")
    tmp = Path(f"/tmp/bench-webhooks-{os.getpid()}")  # noqa: S108 - a local scratch folder
    tmp.mkdir(exist_ok=True)
    workers = [
        live.start_worker(
            tmp, env, name=f"w{i}", queues="webhooks", pool="prefork", concurrency=args.concurrency
        )
        for i in range(2)
    ]
    try:
        started = time.monotonic()
        for first in range(0, args.events, BATCH):
            with transaction.atomic():
                for index in range(first, min(first + BATCH, args.events)):
                    services.webhook_event_record(
                        type="member.added",
                        organization_id=org.pk,
                        data={"membership_id": str(index), "user_id": "", "role": "member"},
                    )
        written = time.monotonic() - started
        print(f"{args.events} events written in {written:.1f} s")
        expected = args.events * args.endpoints
        deadline = time.monotonic() + args.timeout
        done = 0
        while time.monotonic() < deadline:
            done = WebhookDelivery.objects.filter(status="succeeded").count()
            if done >= expected:
                break
            services.webhook_dispatch()  # beat's job in production
            time.sleep(2)
        seconds = time.monotonic() - started
        delays = [
            delay.total_seconds()
            for delay in WebhookAttempt.objects.filter(number=1)
            .annotate(delay=F("started_at") - F("delivery__event__occurred_at"))
            .values_list("delay", flat=True)
        ]
    finally:
        for worker in workers:
            worker.stop()
        for context in contexts:
            context.__exit__(None, None, None)
    return {
        "succeeded": float(done),
        "unique": float(sum(len(r.unique_ids) for r in receivers)),
        "requests": float(sum(len(r.seen_ids) for r in receivers)),
        "bad": float(sum(r.bad_signatures for r in receivers)),
        "seconds": seconds,
        "per_second": done / seconds if seconds else 0.0,
        "p50": _percentile(delays, 0.50),
        "p95": _percentile(delays, 0.95),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--endpoints", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=3 * 3600.0)
    args = parser.parse_args()
    os.environ.update(_env())
    sys.path.insert(0, str(ROOT))
    _database(create=True)
    try:
        subprocess.run(  # noqa: S603 - our own manage.py
            [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=_env(), check=True
        )
        figures = _run(args)
    finally:
        from django.db import connections

        connections.close_all()
        _database(create=False)
    return 0 if report(args, figures) else 1


if __name__ == "__main__":
    sys.exit(main())

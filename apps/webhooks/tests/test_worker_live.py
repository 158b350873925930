"""Deliveries through a real Celery worker (prefork, the `webhooks` queue) on the real Redis,
SIGKILLed mid-delivery: every event still reaches the receiver, which sees each id at least
once and, de-duplicating by `webhook-id`, every event exactly once."""

from __future__ import annotations

import time

import pytest

from apps.orgs.tests.factories import MembershipFactory
from apps.webhooks import services
from apps.webhooks.models import WebhookAttempt, WebhookDelivery
from apps.webhooks.tests.receiver import receiver_running
from tests import live

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_worker_killed_mid_delivery_loses_no_event(org, tmp_path, settings):
    settings.JOBS_PUBLISH = True
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_TIMEOUT_SECONDS = 2.0
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOK_ALLOWED_PORTS = []
    env = live.process_env(
        WEBHOOK_ALLOW_HTTP="true",
        WEBHOOK_TIMEOUT_SECONDS="2",
        WEBHOOK_ALLOW_PRIVATE_TARGETS="true",
        WEBHOOK_ALLOWED_PORTS="",
    )
    with receiver_running() as receiver:
        # Each answer takes a second: a worker is always in the middle of one.
        receiver.delay = 1.0
        endpoint, secret = services.webhook_endpoint_create(organization=org, url=receiver.url)
        receiver.secrets.append(secret)
        first = live.start_worker(
            tmp_path, env, name="first", queues="webhooks", pool="prefork", concurrency=2
        )
        second = None
        try:
            for _ in range(12):
                MembershipFactory(organization=org)
            try:
                live.wait_until(
                    lambda: WebhookAttempt.objects.filter(outcome="running").exists(),
                    60,
                    "an attempt in flight",
                )
            except AssertionError:
                import redis

                queued = redis.Redis.from_url(settings.REDIS_URL).llen("webhooks")
                counts = list(WebhookDelivery.objects.values_list("status", "attempts"))
                raise AssertionError(f"{queued} {counts}\n{first.output()}") from None
            first.kill()  # kill -9 the whole worker: main process and pool
            killed_in_flight = WebhookAttempt.objects.filter(outcome="running").count()
            second = live.start_worker(
                tmp_path, env, name="second", queues="webhooks", pool="prefork", concurrency=2
            )

            def all_delivered() -> bool:
                services.webhook_dispatch()  # beat's job in production
                return not WebhookDelivery.objects.exclude(status="succeeded").exists()

            live.wait_until(all_delivered, 120, "every delivery to succeed", interval=1)
        finally:
            first.stop()
            if second is not None:
                second.stop()
        time.sleep(0.2)
        event_ids = {str(pk) for pk in WebhookDelivery.objects.values_list("event_id", flat=True)}

        assert killed_in_flight >= 1
        assert len(event_ids) == 12
        assert receiver.bad_signatures == 0
        assert receiver.unique_ids == event_ids
        assert len(receiver.seen_ids) >= len(event_ids)
        assert WebhookAttempt.objects.filter(outcome="lost").count() >= 1

"""Deliveries through a real Celery worker (prefork, the `webhooks` queue) on the real Redis,
SIGKILLed mid-delivery: every event still reaches the receiver, which sees each id at least
once and, de-duplicating by `webhook-id`, every event exactly once."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connection, transaction
from django.utils import timezone

from apps.orgs.tests.factories import MembershipFactory
from apps.webhooks import services
from apps.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from apps.webhooks.tests.receiver import receiver_running
from tests import live

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_worker_killed_mid_delivery_loses_no_event(org, tmp_path, settings):
    """Both ways a kill can catch a delivery, each made to happen: one child mid-request (its
    lease runs out) and the other holding a message it has not claimed yet (blocked on a second
    endpoint's row lock, which the test holds): the second is sent again once
    WEBHOOK_UNCLAIMED_AFTER_SECONDS have passed, not after Redis's visibility timeout."""
    settings.JOBS_PUBLISH = True
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_TIMEOUT_SECONDS = 6.0
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOK_ALLOWED_PORTS = []
    settings.WEBHOOK_UNCLAIMED_AFTER_SECONDS = 5.0  # the dispatcher runs here, in the test
    env = live.process_env(
        WEBHOOK_ALLOW_HTTP="true",
        WEBHOOK_TIMEOUT_SECONDS="6",
        WEBHOOK_ALLOW_PRIVATE_TARGETS="true",
        WEBHOOK_ALLOWED_PORTS="",
    )
    with receiver_running() as receiver:
        # Each answer takes 3 s: the kill lands while one child is in the middle of one.
        receiver.delay = 3.0
        endpoint, secret = services.webhook_endpoint_create(organization=org, url=receiver.url)
        receiver.secrets.append(secret)
        locked_endpoint, secret = services.webhook_endpoint_create(
            organization=org, url=receiver.url
        )
        receiver.secrets.append(secret)
        first = live.start_worker(
            tmp_path, env, name="first", queues="webhooks", pool="prefork", concurrency=2
        )
        second = None
        locked, release = threading.Event(), threading.Event()

        def hold_endpoint_lock() -> None:
            try:
                with transaction.atomic():
                    WebhookEndpoint.objects.select_for_update(no_key=True).get(
                        pk=locked_endpoint.pk
                    )
                    locked.set()
                    release.wait(60)
            finally:
                connection.close()

        holder = threading.Thread(target=hold_endpoint_lock)
        try:
            holder.start()
            assert locked.wait(10)
            for _ in range(12):
                MembershipFactory(organization=org)
            live.wait_until(
                lambda: (
                    WebhookAttempt.objects.filter(outcome="running").exists()
                    and _a_claim_waits_on_a_lock()
                ),
                60,
                "one child mid-request while the other waits to claim",
                interval=0.05,
            )
            first.kill()  # kill -9 the whole worker: main process and pool
            killed_at = timezone.now()
            release.set()
            holder.join()
            killed_in_flight = WebhookAttempt.objects.filter(outcome="running").count()
            second = live.start_worker(
                tmp_path, env, name="second", queues="webhooks", pool="prefork", concurrency=2
            )
            # Nothing of the first worker's is on the queue any more: what it had taken (the
            # blocked claim's message, and what it had prefetched) is back only through the
            # dispatcher.
            unclaimed = list(
                WebhookDelivery.objects.filter(
                    status="pending", attempts=0, sent_at__lt=killed_at
                ).values_list("pk", flat=True)
            )

            def all_delivered() -> bool:
                services.webhook_dispatch()  # beat's job in production
                return not WebhookDelivery.objects.exclude(status="succeeded").exists()

            live.wait_until(all_delivered, 120, "every delivery to succeed", interval=1)
            recovered_in = (timezone.now() - killed_at).total_seconds()
        finally:
            release.set()
            first.stop()
            if second is not None:
                second.stop()
        time.sleep(0.2)
        event_ids = {str(pk) for pk in WebhookDelivery.objects.values_list("event_id", flat=True)}

        assert killed_in_flight >= 1
        assert unclaimed  # the case the fix is about did happen
        # Within the killed attempt's lease plus the deliveries' own time (3 s each on two
        # children), far below Redis's visibility timeout or the old half hour.
        lease = services._lease().total_seconds()
        assert recovered_in < lease + 3 * WebhookDelivery.objects.count() / 2 + 20
        assert len(event_ids) == 12
        assert receiver.bad_signatures == 0
        assert receiver.unique_ids == event_ids
        assert len(receiver.seen_ids) >= len(event_ids)
        assert WebhookAttempt.objects.filter(outcome="lost").count() >= 1


def _a_claim_waits_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        )
        return cursor.fetchone()[0] > 0


def test_a_hanging_endpoint_holds_only_its_share_of_the_webhooks_worker(
    org, other_org, tmp_path, settings
):
    """The webhooks worker as compose runs it (threads), a receiver that never answers in time
    queued ahead of another organization's healthy one: the hanging endpoint gets at most
    WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT attempts at once, the rest wait without using an attempt,
    and the healthy endpoint's deliveries go through meanwhile instead of after the backlog."""
    limit = 2
    settings.JOBS_PUBLISH = True
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOK_ALLOWED_PORTS = []
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT = limit
    env = live.process_env(
        WEBHOOK_ALLOW_HTTP="true",
        WEBHOOK_TIMEOUT_SECONDS="2",
        WEBHOOK_ALLOW_PRIVATE_TARGETS="true",
        WEBHOOK_ALLOWED_PORTS="",
        WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT=str(limit),
        WEBHOOK_BUSY_POSTPONE_SECONDS="1",
    )
    with receiver_running() as hanging, receiver_running() as healthy:
        hanging.mode = "hang"
        slow, secret = services.webhook_endpoint_create(organization=org, url=hanging.url)
        hanging.secrets.append(secret)
        fine, secret = services.webhook_endpoint_create(organization=other_org, url=healthy.url)
        healthy.secrets.append(secret)
        # Queued first: without the limit, 6 threads would work through these 30 (2 s each)
        # before reaching the healthy endpoint's.
        for index in range(30):
            services.webhook_event_record(
                type="member.added", organization_id=org.pk, data={"index": index}
            )
        for index in range(10):
            services.webhook_event_record(
                type="member.added", organization_id=other_org.pk, data={"index": index}
            )
        worker = live.start_compose_worker(tmp_path, env, service="webhooks-worker", concurrency=6)
        most_at_once = 0
        try:

            def healthy_done() -> bool:
                nonlocal most_at_once
                running = WebhookAttempt.objects.filter(
                    delivery__endpoint=slow, outcome="running"
                ).count()
                most_at_once = max(most_at_once, running)
                services.webhook_dispatch()  # beat's job in production
                return (
                    WebhookDelivery.objects.filter(endpoint=fine, status="succeeded").count() == 10
                )

            try:
                live.wait_until(healthy_done, 90, "the healthy endpoint's deliveries", 0.1)
            except AssertionError:
                raise AssertionError(worker.output()) from None
            slow_attempts = WebhookAttempt.objects.filter(delivery__endpoint=slow).count()
            waiting = WebhookDelivery.objects.filter(endpoint=slow, status="pending", attempts=0)
            waiting_count = waiting.count()
        finally:
            worker.stop()

    assert healthy.bad_signatures == 0 and len(healthy.unique_ids) == 10
    assert 1 <= most_at_once <= limit
    # Far fewer than the 24 a first-come worker would have started before the healthy ones.
    assert slow_attempts <= 3 * limit
    assert waiting_count >= 30 - 3 * limit

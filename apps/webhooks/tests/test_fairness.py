"""The per-endpoint in-flight limit (WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT): a claim past it leaves
the delivery pending a moment without using an attempt, concurrent claims count one another, and
what one delivery costs in SQL statements is pinned."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.orgs.tests.factories import MembershipFactory
from apps.webhooks import services
from apps.webhooks.catalogue import MEMBER_ADDED
from apps.webhooks.models import WebhookAttempt, WebhookDelivery

pytestmark = pytest.mark.django_db


def _deliveries(org, count: int) -> list[WebhookDelivery]:
    for _ in range(count):
        MembershipFactory(organization=org, role="member")
    return list(
        WebhookDelivery.objects.filter(event__type=MEMBER_ADDED, organization=org).order_by(
            "created_at"
        )
    )


def _in_flight(delivery: WebhookDelivery, seconds: float = 60) -> None:
    """As a worker's live claim leaves it."""
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status="delivering",
        attempts=1,
        claimed_until=timezone.now() + timedelta(seconds=seconds),
    )


def test_a_claim_past_the_endpoint_s_in_flight_limit_waits_without_using_an_attempt(
    org, receiver, endpoint_for, settings
):
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT = 2
    settings.WEBHOOK_BUSY_POSTPONE_SECONDS = 2.0
    endpoint_for(receiver)
    first, second, third = _deliveries(org, 3)
    _in_flight(first)
    _in_flight(second)

    before = timezone.now()
    assert services.webhook_delivery_attempt(delivery_id=third.pk) == "skipped"

    third.refresh_from_db()
    assert (third.status, third.attempts) == ("pending", 0)
    assert 1.5 <= (third.next_attempt_at - before).total_seconds() <= 3
    assert not WebhookAttempt.objects.filter(delivery=third).exists()
    assert receiver.requests == []
    # Not a failure: the endpoint is not marked failing.
    third.endpoint.refresh_from_db()
    assert third.endpoint.failing_since is None


def test_a_busy_endpoint_does_not_hold_back_another_organization_s_endpoint(
    org, other_org, receiver, endpoint_for, settings
):
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT = 1
    endpoint_for(receiver)
    busy, waiting = _deliveries(org, 2)
    _in_flight(busy)
    endpoint_for(receiver, organization=other_org)
    [theirs] = _deliveries(other_org, 1)

    assert services.webhook_delivery_attempt(delivery_id=waiting.pk) == "skipped"
    assert services.webhook_delivery_attempt(delivery_id=theirs.pk) == "succeeded"


def test_a_lease_that_ran_out_does_not_count_as_in_flight(org, receiver, endpoint_for, settings):
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT = 1
    endpoint_for(receiver)
    dead, waiting = _deliveries(org, 2)
    _in_flight(dead, seconds=-1)  # its worker died: the lease is over

    assert services.webhook_delivery_attempt(delivery_id=waiting.pk) == "succeeded"


def test_once_an_attempt_ends_the_postponed_delivery_goes_out(
    org, receiver, endpoint_for, settings
):
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT = 1
    endpoint_for(receiver)
    first, second = _deliveries(org, 2)
    _in_flight(first)
    assert services.webhook_delivery_attempt(delivery_id=second.pk) == "skipped"

    WebhookDelivery.objects.filter(pk=first.pk).update(status="succeeded", claimed_until=None)
    WebhookDelivery.objects.filter(pk=second.pk).update(next_attempt_at=timezone.now())
    assert services.webhook_delivery_attempt(delivery_id=second.pk) == "succeeded"
    assert WebhookAttempt.objects.get(delivery=second).number == 1


def test_without_a_limit_every_due_delivery_is_claimed(org, receiver, endpoint_for, settings):
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT = 0
    endpoint_for(receiver)
    deliveries = _deliveries(org, 3)
    _in_flight(deliveries[0])
    _in_flight(deliveries[1])

    assert services.webhook_delivery_attempt(delivery_id=deliveries[2].pk) == "succeeded"


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_of_one_endpoint_never_pass_its_limit(
    org, receiver, endpoint_for, settings
):
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT = 3
    endpoint_for(receiver)
    deliveries = _deliveries(org, 12)
    start = threading.Barrier(len(deliveries))
    claimed: list[object] = []

    def claim(delivery: WebhookDelivery) -> None:
        try:
            start.wait()
            if services._claim(delivery.pk, timezone.now()) is not None:
                claimed.append(delivery.pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim, args=(d,)) for d in deliveries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(claimed) == 3
    assert WebhookDelivery.objects.filter(status="delivering").count() == 3
    assert WebhookDelivery.objects.filter(status="pending", attempts=0).count() == 9


@pytest.mark.django_db(transaction=True)  # committed, so the org's data key is cached
def test_a_first_attempt_that_succeeds_costs_thirteen_sql_statements(
    org, receiver, endpoint_for, django_assert_num_queries
):
    # BEGIN, the delivery with its event and endpoint (the endpoint's row locked), the claim,
    # the attempt's row, COMMIT; then BEGIN, the attempt's outcome, the delivery's, clearing
    # the endpoint's failing mark (a no-op here), COMMIT; then BEGIN, the endpoint's next
    # delivery refused for its in-flight limit (none here), COMMIT. The org's data key comes
    # from the process cache (warmed by the first delivery).
    endpoint_for(receiver)
    warm, measured = _deliveries(org, 2)
    services.webhook_delivery_attempt(delivery_id=warm.pk)

    with django_assert_num_queries(13):
        assert services.webhook_delivery_attempt(delivery_id=measured.pk) == "succeeded"


def test_the_dispatcher_publishes_a_busy_endpoint_s_backlog_only_into_free_slots(
    org, receiver, endpoint_for, settings
):
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT = 4
    endpoint_for(receiver)
    deliveries = _deliveries(org, 40)
    for delivery in deliveries[:4]:
        _in_flight(delivery)
    # The other 36 were refused for the limit: pending, postponed, no message on its way.
    later = timezone.now() - timedelta(seconds=1)
    WebhookDelivery.objects.filter(pk__in=[d.pk for d in deliveries[4:]]).update(
        next_attempt_at=later, sent_at=later - timedelta(seconds=5)
    )

    rounds = [services.webhook_dispatch()["published"] for _ in range(5)]
    assert rounds == [0, 0, 0, 0, 0]

    WebhookDelivery.objects.filter(pk=deliveries[0].pk).update(status="succeeded")
    assert services.webhook_dispatch() == {"published": 1}  # the one slot that came free
    assert services.webhook_dispatch() == {"published": 0}


def test_an_attempt_that_ends_hands_its_slot_to_the_endpoint_s_next_waiting_delivery(
    org, receiver, endpoint_for, settings
):
    settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT = 1
    endpoint_for(receiver)
    first, second = _deliveries(org, 2)
    _in_flight(second)
    assert services.webhook_delivery_attempt(delivery_id=first.pk) == "skipped"  # refused: busy
    WebhookDelivery.objects.filter(pk=second.pk).update(status="pending", attempts=0)
    first.refresh_from_db()
    assert first.sent_at < first.next_attempt_at  # waiting, no message on its way

    assert services.webhook_delivery_attempt(delivery_id=second.pk) == "succeeded"

    first.refresh_from_db()
    assert first.sent_at >= first.next_attempt_at  # published again without the dispatcher
    assert services.webhook_delivery_attempt(delivery_id=first.pk) == "succeeded"


def test_the_dispatcher_counts_each_endpoint_s_busy_slots_once_not_once_per_waiting_delivery(
    org, receiver, endpoint_for, settings
):
    # A count correlated with every waiting row made one endpoint's backlog of 20,000 cost the
    # dispatcher 20 s a run (2,000: 0.35 s), for every organization's retries: the plan must
    # join one count per endpoint, with no subplan evaluated row by row.
    from django.test.utils import CaptureQueriesContext

    settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT = 4
    endpoint_for(receiver)
    deliveries = _deliveries(org, 8)
    for delivery in deliveries[:4]:
        _in_flight(delivery)
    later = timezone.now() - timedelta(seconds=1)
    WebhookDelivery.objects.filter(pk__in=[d.pk for d in deliveries[4:]]).update(
        next_attempt_at=later, sent_at=later - timedelta(seconds=5)
    )

    with CaptureQueriesContext(connection) as captured:
        assert services.webhook_dispatch() == {"published": 0}

    selecting = [q["sql"] for q in captured.captured_queries if "ROW_NUMBER()" in q["sql"]]
    assert len(selecting) == 1
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + selecting[0])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "SubPlan" not in plan, plan

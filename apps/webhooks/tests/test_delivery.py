"""Deliveries against real loopback receivers that verify signatures with `standardwebhooks`:
failures on purpose (500, timeout, refused, slow body), retries and recovery, rotation, SSRF
refusals, auto-disable and retention."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from apps.orgs.tests.factories import MembershipFactory
from apps.webhooks import services
from apps.webhooks.catalogue import MEMBER_ADDED
from apps.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from apps.webhooks.tests.receiver import closed_port

pytestmark = pytest.mark.django_db


def _member_added(org) -> WebhookDelivery:
    MembershipFactory(organization=org, role="member")
    return WebhookDelivery.objects.filter(event__type=MEMBER_ADDED).latest("created_at")


def _attempt_now(delivery: WebhookDelivery) -> str:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    return services.webhook_delivery_attempt(delivery_id=delivery.pk)


def test_a_new_member_reaches_the_receiver_signed_and_verifiable(org, receiver, endpoint_for):
    endpoint_for(receiver)
    delivery = _member_added(org)

    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "succeeded"

    assert receiver.bad_signatures == 0
    [request] = receiver.requests
    payload = json.loads(request["body"])
    assert payload["type"] == "member.added"
    assert payload["version"] == 1
    assert payload["id"] == request["headers"]["webhook-id"] == str(delivery.event_id)
    assert payload["data"]["role"] == "member"
    assert request["headers"]["webhook-signature"].startswith("v1,")
    [attempt] = WebhookAttempt.objects.filter(delivery=delivery)
    assert (attempt.outcome, attempt.response_status) == ("succeeded", 204)
    assert attempt.duration_ms is not None


def test_the_event_is_written_in_the_transaction_of_the_change(org, receiver, endpoint_for):
    endpoint_for(receiver)
    with pytest.raises(RuntimeError), transaction.atomic():
        MembershipFactory(organization=org)
        assert WebhookEvent.objects.filter(type=MEMBER_ADDED).count() == 1
        raise RuntimeError("the change fails")
    assert not WebhookEvent.objects.filter(type=MEMBER_ADDED).exists()
    assert not WebhookDelivery.objects.exists()


def test_an_endpoint_gets_only_the_event_types_it_asked_for(org, receiver, endpoint_for):
    endpoint_for(receiver, event_types=["api_key.revoked"])
    MembershipFactory(organization=org)
    assert not WebhookEvent.objects.filter(type=MEMBER_ADDED).exists()
    assert not WebhookDelivery.objects.exists()


def test_a_500_is_retried_later_with_the_body_logged_bounded_then_recovers(
    org, receiver, endpoint_for
):
    endpoint_for(receiver)
    delivery = _member_added(org)
    receiver.mode = "500"

    before = timezone.now()
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "pending"

    delivery.refresh_from_db()
    wait = (delivery.next_attempt_at - before).total_seconds()
    assert 30 * 0.8 - 1 <= wait <= 30 * 1.2 + 1
    # Not due yet: a duplicate message does nothing.
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "skipped"
    attempt = WebhookAttempt.objects.get(delivery=delivery)
    assert attempt.response_status == 500
    assert len(attempt.response_body) == services.RESPONSE_BODY_BYTES
    assert attempt.error == "answered 500"

    receiver.mode = "ok"
    assert _attempt_now(delivery) == "succeeded"
    assert receiver.unique_ids == {str(delivery.event_id)}
    assert [a.outcome for a in WebhookAttempt.objects.filter(delivery=delivery)] == [
        "failed",
        "succeeded",
    ]
    assert WebhookEndpoint.objects.get().failing_since is None


@pytest.mark.parametrize(
    ("mode", "error"),
    [("hang", "timed out"), ("slow_body", "timed out"), ("slow_headers", "timed out")],
)
def test_a_receiver_too_slow_to_answer_fails_the_attempt_at_the_timeout(
    org, receiver, endpoint_for, mode, error
):
    endpoint_for(receiver)
    delivery = _member_added(org)
    receiver.mode = mode

    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "pending"

    attempt = WebhookAttempt.objects.get(delivery=delivery)
    assert attempt.error == error
    assert attempt.duration_ms < 3000


def test_a_refused_connection_is_a_failed_attempt_and_the_delivery_waits(org, plain_http):
    endpoint, _ = services.webhook_endpoint_create(
        organization=org, url=f"http://127.0.0.1:{closed_port()}/hook"
    )
    delivery = _member_added(org)

    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "pending"
    assert WebhookAttempt.objects.get(delivery=delivery).error.startswith("connection failed")


def test_a_redirect_is_not_followed(org, receiver, endpoint_for):
    endpoint_for(receiver)
    delivery = _member_added(org)
    receiver.mode = "redirect"

    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "pending"

    assert [r["path"] for r in receiver.requests] == ["/hook/"]
    assert WebhookAttempt.objects.get(delivery=delivery).response_status == 302


def test_during_a_rotation_both_secrets_sign_and_after_it_only_the_new_one(
    org, receiver, endpoint_for
):
    endpoint = endpoint_for(receiver)
    old = receiver.secrets[0]
    new = services.webhook_endpoint_rotate_secret(endpoint=endpoint, overlap_seconds=3600)
    assert new.startswith("whsec_") and new != old

    services.webhook_delivery_attempt(delivery_id=_member_added(org).pk)
    request = receiver.requests[-1]
    assert len(request["headers"]["webhook-signature"].split(" ")) == 2
    assert receiver.verified_by(old, request)
    assert receiver.verified_by(new, request)

    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    services.webhook_delivery_attempt(delivery_id=_member_added(org).pk)
    request = receiver.requests[-1]
    assert len(request["headers"]["webhook-signature"].split(" ")) == 1
    assert not receiver.verified_by(old, request)
    assert receiver.verified_by(new, request)


def test_custom_headers_are_sent_and_stored_encrypted(org, receiver, endpoint_for):
    endpoint_for(receiver, headers={"Authorization": "Bearer CANARY-hdr-7"})
    services.webhook_delivery_attempt(delivery_id=_member_added(org).pk)
    assert receiver.requests[-1]["headers"]["authorization"] == "Bearer CANARY-hdr-7"
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT headers, secret FROM webhooks_webhookendpoint")
        headers, secret = cursor.fetchone()
    assert "CANARY" not in headers
    assert receiver.secrets[0] not in secret


def test_an_endpoint_that_fails_a_whole_retry_schedule_is_disabled_with_an_audit_entry(
    org, receiver, endpoint_for
):
    from apps.audit.models import AuditEntry

    endpoint = endpoint_for(receiver)
    receiver.mode = "500"
    delivery = _member_added(org)
    for _ in range(services.MAX_ATTEMPTS):
        _attempt_now(delivery)

    delivery.refresh_from_db()
    endpoint.refresh_from_db()
    assert delivery.status == "failed"
    assert delivery.attempts == services.MAX_ATTEMPTS
    assert not endpoint.enabled
    assert "every attempt failed" in endpoint.disabled_reason
    entry = AuditEntry.objects.filter(object_id=str(endpoint.pk), event="resource.update").get()
    assert entry.changes["enabled"] == {"before": True, "after": False}
    # A disabled endpoint gets no new deliveries.
    MembershipFactory(organization=org)
    assert WebhookDelivery.objects.count() == 1


def test_redelivery_sends_the_same_event_again_as_a_new_attempt(org, receiver, endpoint_for):
    endpoint_for(receiver)
    delivery = _member_added(org)
    services.webhook_delivery_attempt(delivery_id=delivery.pk)

    services.webhook_delivery_redeliver(delivery=delivery)
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "succeeded"

    first, second = receiver.requests
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"]
    assert json.loads(first["body"]) == json.loads(second["body"])
    assert receiver.unique_ids == {str(delivery.event_id)}
    assert WebhookAttempt.objects.filter(delivery=delivery).count() == 2


def test_a_test_event_goes_to_the_one_endpoint(org, receiver, endpoint_for):
    endpoint = endpoint_for(receiver)
    endpoint_for(receiver)
    delivery = services.webhook_test_send(endpoint=endpoint)
    services.webhook_delivery_attempt(delivery_id=delivery.pk)
    assert [json.loads(r["body"])["type"] for r in receiver.requests] == ["webhook.test"]


def test_a_lease_that_runs_out_makes_the_dispatcher_send_the_delivery_again(
    org, receiver, endpoint_for
):
    endpoint_for(receiver)
    delivery = _member_added(org)
    # A worker claimed it and died before recording anything.
    past = timezone.now() - timedelta(minutes=5)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status="delivering", attempts=1, claimed_until=past, sent_at=past - timedelta(minutes=1)
    )
    WebhookAttempt.objects.create(
        organization=org, delivery=delivery, number=1, started_at=past - timedelta(minutes=1)
    )

    assert services.webhook_dispatch() == {"published": 1}
    assert services.webhook_dispatch() == {"published": 0}
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "succeeded"
    attempts = WebhookAttempt.objects.filter(delivery=delivery)
    outcomes = list(attempts.values_list("outcome", flat=True))
    assert outcomes == ["lost", "succeeded"]


def test_finished_deliveries_older_than_the_job_retention_are_purged(
    org, receiver, endpoint_for, settings
):
    endpoint_for(receiver)
    old, recent = _member_added(org), _member_added(org)
    for delivery in (old, recent):
        services.webhook_delivery_attempt(delivery_id=delivery.pk)
    long_ago = timezone.now() - timedelta(days=settings.JOB_RETENTION_DAYS + 1)
    WebhookDelivery.objects.filter(pk=old.pk).update(finished_at=long_ago)
    WebhookEvent.objects.filter(pk=old.event_id).update(occurred_at=long_ago)

    assert services.webhook_deliveries_purge() == {"deliveries_deleted": 1, "events_deleted": 1}
    assert list(WebhookDelivery.objects.values_list("pk", flat=True)) == [recent.pk]


def test_a_name_resolving_to_loopback_is_refused_when_sending(org, receiver, settings):
    services.webhook_endpoint_create(
        organization=org, url=receiver.url.replace("127.0.0.1", "localhost")
    )
    settings.AUTOGLUE_ALLOW_LOOPBACK_TARGETS = False
    delivery = _member_added(org)

    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "pending"

    assert receiver.requests == []
    error = WebhookAttempt.objects.get(delivery=delivery).error
    assert error == "refused: the host resolves to an address that must not be a loopback address"


def test_a_stored_metadata_url_is_refused_when_sending(org, receiver, endpoint_for):
    endpoint = endpoint_for(receiver)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url="http://169.254.169.254/latest")
    delivery = _member_added(org)

    services.webhook_delivery_attempt(delivery_id=delivery.pk)

    error = WebhookAttempt.objects.get(delivery=delivery).error
    assert error == "url must not be a link-local address"


def test_the_connection_goes_to_the_address_that_was_checked(
    org, receiver, endpoint_for, monkeypatch
):
    """A resolver that answers loopback (allowed here) once and the metadata address after:
    the request reaches the checked address, so a rebinding name gains nothing."""
    import socket

    endpoint = endpoint_for(receiver)
    port = int(receiver.url.split(":")[2].split("/")[0])
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=f"http://rebind.test:{port}/hook/")
    answers = iter(["127.0.0.1", "169.254.169.254", "169.254.169.254"])
    real = socket.getaddrinfo

    def rebinding(host, *args, **kwargs):
        if host == "rebind.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    delivery = _member_added(org)

    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "succeeded"
    assert len(receiver.requests) == 1
    assert receiver.requests[0]["headers"]["host"] == f"rebind.test:{port}"


def test_a_body_with_a_nul_byte_is_recorded_and_the_delivery_finishes(org, receiver, endpoint_for):
    endpoint_for(receiver)
    delivery = _member_added(org)
    receiver.mode = "nul_body"

    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "succeeded"

    attempt = WebhookAttempt.objects.get(delivery=delivery)
    assert attempt.response_body.startswith("ok\ufffd")
    delivery.refresh_from_db()
    assert delivery.status == "succeeded"


def test_an_answer_that_cannot_be_saved_fails_the_attempt_instead_of_hanging(
    org, receiver, endpoint_for, monkeypatch
):
    endpoint_for(receiver)
    delivery = _member_added(org)
    # Whatever slips past the clean-up: the delivery must not stay `delivering`.
    monkeypatch.setattr(services, "_db_text", lambda text: text + "\x00")

    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "pending"

    attempt = WebhookAttempt.objects.get(delivery=delivery)
    assert (attempt.outcome, attempt.error) == ("failed", "the answer could not be recorded")


def test_a_lease_lost_on_the_last_attempt_fails_the_delivery_instead_of_retrying_forever(
    org, receiver, endpoint_for
):
    endpoint = endpoint_for(receiver)
    delivery = _member_added(org)
    past = timezone.now() - timedelta(minutes=5)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status="delivering", attempts=services.MAX_ATTEMPTS, claimed_until=past
    )
    WebhookAttempt.objects.create(
        organization=org, delivery=delivery, number=services.MAX_ATTEMPTS, started_at=past
    )

    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "skipped"

    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert receiver.requests == []
    assert list(WebhookAttempt.objects.values_list("outcome", flat=True)) == ["lost"]
    endpoint.refresh_from_db()
    assert endpoint.failing_since is not None


def test_the_lease_outlasts_the_task_hard_time_limit(settings):
    from apps.webhooks import tasks

    settings.WEBHOOK_TIMEOUT_SECONDS = 10.0
    soft, hard = services.attempt_time_limits()
    assert 10 < soft < hard < services._lease().total_seconds()
    assert tasks.deliver.time_limit == hard and tasks.deliver.soft_time_limit == soft


@pytest.mark.django_db(transaction=True)
def test_an_event_recorded_outside_a_transaction_is_not_left_without_its_deliveries(
    org, receiver, endpoint_for, monkeypatch
):
    endpoint_for(receiver)

    def broken(*args, **kwargs):
        raise RuntimeError("the deliveries could not be written")

    monkeypatch.setattr(WebhookDelivery.objects, "bulk_create", broken)
    with pytest.raises(RuntimeError):
        services.webhook_event_record(
            type=MEMBER_ADDED, organization_id=org.pk, data={"user_id": "x"}
        )

    assert not WebhookEvent.objects.exists()


def test_a_name_resolving_to_a_private_address_is_refused_when_sending(org, receiver, settings):
    services.webhook_endpoint_create(
        organization=org, url=receiver.url.replace("127.0.0.1", "localhost")
    )
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = False
    delivery = _member_added(org)

    services.webhook_delivery_attempt(delivery_id=delivery.pk)

    assert receiver.requests == []
    error = WebhookAttempt.objects.get(delivery=delivery).error
    assert error == "refused: the host resolves to an address that must not be a private address"


def test_a_failed_connection_names_no_exception_class(org, plain_http):
    services.webhook_endpoint_create(organization=org, url=f"http://127.0.0.1:{closed_port()}/hook")
    delivery = _member_added(org)

    services.webhook_delivery_attempt(delivery_id=delivery.pk)

    assert WebhookAttempt.objects.get(delivery=delivery).error == "connection failed"


def test_the_dispatcher_republishes_only_what_has_no_message_on_its_way(
    org, receiver, endpoint_for
):
    endpoint_for(receiver)
    now = timezone.now()
    fresh, published_retry, lost_first, unpublished_retry = (_member_added(org) for _ in range(4))
    # A first attempt published a minute ago is waiting in a queue: not lost yet.
    WebhookDelivery.objects.filter(pk=fresh.pk).update(
        next_attempt_at=now - timedelta(minutes=1), sent_at=now - timedelta(minutes=1)
    )
    # A retry already published for this attempt.
    WebhookDelivery.objects.filter(pk=published_retry.pk).update(
        attempts=1, next_attempt_at=now - timedelta(minutes=1), sent_at=now - timedelta(seconds=30)
    )
    # Published an hour ago and never claimed, the queue empty: the message was lost.
    WebhookDelivery.objects.filter(pk=lost_first.pk).update(
        next_attempt_at=now - timedelta(hours=1), sent_at=now - timedelta(hours=1)
    )
    # A retry that came due and was never published.
    WebhookDelivery.objects.filter(pk=unpublished_retry.pk).update(
        attempts=1, next_attempt_at=now - timedelta(seconds=5), sent_at=now - timedelta(minutes=2)
    )

    assert services.webhook_dispatch() == {"published": 2}
    republished = WebhookDelivery.objects.filter(sent_at__gte=now).values_list("pk", flat=True)
    assert set(republished) == {lost_first.pk, unpublished_retry.pk}


def test_a_message_taken_by_a_worker_killed_before_its_claim_is_sent_again_within_minutes(
    org, receiver, endpoint_for, settings, django_capture_on_commit_callbacks
):
    import redis

    settings.JOBS_PUBLISH = True
    endpoint_for(receiver)
    delivery = _member_added(org)
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    services._publish([str(delivery.pk)])
    assert broker.lpop("webhooks")  # a worker took the message, and died before claiming
    taken = timezone.now() - timedelta(seconds=settings.WEBHOOK_UNCLAIMED_AFTER_SECONDS + 5)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=taken, sent_at=taken)

    # A long queue is a backlog, not a loss: nothing is doubled.
    broker.rpush("webhooks", *[b"{}"] * services.QUEUE_SHORT)
    assert services.webhook_dispatch() == {"published": 0}
    broker.delete("webhooks")

    with django_capture_on_commit_callbacks(execute=True):
        assert services.webhook_dispatch() == {"published": 1}
    assert broker.llen("webhooks") == 1
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "succeeded"
    # The lost message, had it come back after all, cannot send it twice.
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "skipped"
    assert len(receiver.requests) == 1


def test_the_dispatcher_runs_on_the_maintenance_queue():
    from django_celery_beat.models import PeriodicTask

    assert PeriodicTask.objects.get(name="webhooks-dispatch").queue == "maintenance"


def test_the_purge_goes_in_batches_and_stops_when_asked(org, receiver, endpoint_for, settings):
    endpoint_for(receiver)
    settings.MAINTENANCE_DELETE_BATCH_SIZE = 2
    deliveries = [_member_added(org) for _ in range(5)]
    long_ago = timezone.now() - timedelta(days=settings.JOB_RETENTION_DAYS + 1)
    WebhookDelivery.objects.update(status="succeeded", finished_at=long_ago)
    WebhookEvent.objects.update(occurred_at=long_ago)
    asked = []

    def stop_after_two_batches() -> bool:
        asked.append(1)
        return len(asked) >= 2

    first = services.webhook_deliveries_purge(should_stop=stop_after_two_batches)
    assert first == {"deliveries_deleted": 4, "events_deleted": 0}
    assert services.webhook_deliveries_purge() == {"deliveries_deleted": 1, "events_deleted": 5}
    assert not WebhookDelivery.objects.filter(pk__in=[d.pk for d in deliveries]).exists()


def test_when_the_first_address_refuses_the_next_checked_one_is_tried(
    org, receiver, endpoint_for, monkeypatch
):
    import socket

    endpoint = endpoint_for(receiver)
    port = int(receiver.url.split(":")[2].split("/")[0])
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=f"http://two.test:{port}/hook/")
    real = socket.getaddrinfo

    def two_addresses(host, *args, **kwargs):
        if host == "two.test":  # nothing listens on 127.0.0.2 at that port: refused
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
                for address in ("127.0.0.2", "127.0.0.1")
            ]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", two_addresses)
    delivery = _member_added(org)

    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "succeeded"
    assert len(receiver.requests) == 1


def test_a_disabled_endpoint_s_deliveries_wait_and_go_once_it_is_enabled(
    org, receiver, endpoint_for
):
    endpoint = endpoint_for(receiver)
    delivery = _member_added(org)
    services.webhook_endpoint_update(endpoint=endpoint, enabled=False)

    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "skipped"
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("pending", 0)
    assert receiver.requests == []

    services.webhook_endpoint_update(endpoint=endpoint, enabled=True)
    assert services.webhook_dispatch() == {"published": 1}
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "succeeded"


def test_a_name_lookup_that_never_answers_fails_the_attempt_at_the_timeout(
    org, receiver, endpoint_for, monkeypatch
):
    """The threads pool enforces no Celery time limit: the request's deadline covers DNS too."""
    import socket
    import time

    endpoint = endpoint_for(receiver)
    port = int(receiver.url.split(":")[2].split("/")[0])
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=f"http://stuck.test:{port}/hook/")
    real = socket.getaddrinfo

    def stuck(host, *args, **kwargs):
        if host == "stuck.test":
            time.sleep(3)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", stuck)
    delivery = _member_added(org)

    started = time.monotonic()
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "pending"
    assert time.monotonic() - started < 2.5  # WEBHOOK_TIMEOUT_SECONDS is 1 here
    assert WebhookAttempt.objects.get(delivery=delivery).error == "timed out"
    assert receiver.requests == []

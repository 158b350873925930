"""Endpoints, the outbox, and delivering: every write of the webhooks app goes through here (API,
console and the delivery task alike).

A delivery is claimed with a conditional update that also sets a lease (`claimed_until`); the
HTTP request runs outside any transaction; its outcome is written fenced on the attempt number,
so a worker that lost its lease cannot overwrite the attempt that replaced it. The dispatcher
(every few seconds, from beat) publishes deliveries that are due (retries) and those whose lease
ran out (a worker died mid-request): a duplicate message cannot claim twice.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import re
import secrets
import ssl
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from http.client import HTTPException
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet, Window
from django.db.models.functions import RowNumber
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from apps.core.cache import cache_down
from apps.core.middleware import rate_hit
from apps.core.validators import UNSAFE_TEXT, validate_hostname
from apps.webhooks import clients
from apps.webhooks.catalogue import EVENT_TYPES, VERSION, WEBHOOK_TEST
from apps.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent

logger = logging.getLogger(__name__)

TASK_NAME = "webhooks.deliver"
QUEUE = "webhooks"
URL_MAX = 2000
HEADERS_MAX = 20
HEADER_VALUE_MAX = 1000
# The first bytes of a response kept in the delivery log.
RESPONSE_BODY_BYTES = 1024
# Delays before attempts 2..10 (seconds), each with +/-20 % jitter: about 23.7 hours in all,
# then the delivery is failed (docs/webhooks.md, "Retries").
RETRY_SCHEDULE: tuple[int, ...] = (30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800)
MAX_ATTEMPTS = len(RETRY_SCHEDULE) + 1
JITTER = 0.2
# How often a disabled endpoint's waiting deliveries are looked at again.
DISABLED_RECHECK = timedelta(hours=1)
QUEUE_SHORT = 100
DISPATCH_BATCH = 1000
SECRET_BYTES = 24
ROTATION_OVERLAP_MAX = 7 * 24 * 3600
# Headers Autoglue sets itself; an endpoint's custom headers may not replace them.
_RESERVED_HEADERS = frozenset(
    {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "content-type",
        "content-length",
        "host",
        "transfer-encoding",
        "connection",
        "user-agent",
    }
)
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}")


class DeliveryInProgress(Exception):
    """A redelivery asked while an attempt of the delivery is running."""


class RotationInProgress(Exception):
    """A rotation asked while the previous one's overlap still runs (without `force`)."""


# --- validation at entry -------------------------------------------------------------------------


def webhook_url_check(value: Any) -> str:
    """An endpoint URL: https (http only with WEBHOOK_ALLOW_HTTP), a host, no credentials or
    fragment; an address literal must pass the SSH target rules. Names are checked again after
    DNS at every send. Raises ValidationError naming no value."""
    if not isinstance(value, str) or not value:
        raise ValidationError("must be a URL", code="invalid")
    if len(value) > URL_MAX:
        raise ValidationError(f"must be at most {URL_MAX} characters", code="invalid")
    if UNSAFE_TEXT.search(value) or " " in value:
        raise ValidationError("must not contain spaces or control characters", code="invalid")
    _url_parts_check(urlsplit(value))
    return value


def _port_check(scheme: str, port: int | None) -> None:
    """Only the ports the operator allows (WEBHOOK_ALLOWED_PORTS, 80 too for http): a webhook
    must not probe a host's other services."""
    allowed = list(settings.WEBHOOK_ALLOWED_PORTS)
    if not allowed or port is None:
        return
    if scheme == "http":
        allowed.append(80)
    if port not in allowed:
        shown = ", ".join(str(item) for item in sorted(set(allowed)))
        raise ValidationError(f"must use one of the ports {shown}", code="invalid")


def _url_parts_check(parts: Any) -> None:
    allowed = ("https", "http") if settings.WEBHOOK_ALLOW_HTTP else ("https",)
    if parts.scheme not in allowed:
        raise ValidationError(
            "must be an https:// URL" if len(allowed) == 1 else "must be an http(s):// URL",
            code="invalid",
        )
    try:
        port = parts.port
    except ValueError:
        raise ValidationError("has an invalid port", code="invalid") from None
    if port == 0:
        raise ValidationError("has an invalid port", code="invalid")
    _port_check(parts.scheme, port)
    host = parts.hostname or ""
    if not host:
        raise ValidationError("must name a host", code="invalid")
    if parts.username is not None or parts.password is not None:
        raise ValidationError("must not carry a user name or password", code="invalid")
    if parts.fragment:
        raise ValidationError("must not have a fragment", code="invalid")
    try:
        clients.webhook_target_ip_check(host)
    except ValidationError as exc:
        if "valid IPv4 or IPv6" not in exc.messages[0]:
            raise
        validate_hostname(host.rstrip("."))


def webhook_headers_check(value: Any) -> dict[str, str]:
    """Custom request headers: an object of at most 20 names to one-line string values; names
    Autoglue sets itself (`webhook-*`, content type, host...) are refused."""
    if not isinstance(value, dict):
        raise ValidationError("must be an object of header names to values", code="invalid")
    if len(value) > HEADERS_MAX:
        raise ValidationError(f"must have at most {HEADERS_MAX} headers", code="invalid")
    for name, item in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ValidationError("header names must be HTTP tokens", code="invalid")
        if name.lower() in _RESERVED_HEADERS or name.lower().startswith("webhook-"):
            raise ValidationError(
                f"{name} is set by Autoglue and cannot be replaced", code="invalid"
            )
        if not isinstance(item, str) or len(item) > HEADER_VALUE_MAX or UNSAFE_TEXT.search(item):
            raise ValidationError(
                f"{name}: must be a string of at most {HEADER_VALUE_MAX} characters on one line",
                code="invalid",
            )
    return {str(name): str(item) for name, item in value.items()}


def webhook_event_types_check(value: Any) -> list[str]:
    """The event types an endpoint wants: a list of catalogue types (empty means all)."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValidationError("must be a list of event types", code="invalid")
    unknown = sorted(set(value) - set(EVENT_TYPES))
    if unknown:
        raise ValidationError(f"unknown event types: {', '.join(unknown[:5])}", code="invalid")
    return sorted(set(value))


# --- endpoints -----------------------------------------------------------------------------------


def webhook_secret_new() -> str:
    """A new signing secret in the Standard Webhooks form (`whsec_` + base64 of random bytes)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def webhook_endpoint_headers(endpoint: WebhookEndpoint) -> dict[str, str]:
    """The endpoint's custom headers (decrypted)."""
    return json.loads(endpoint.headers) if endpoint.headers else {}


def webhook_endpoints_owned_by(organization: Any) -> QuerySet[WebhookEndpoint]:
    """The endpoints of an organization, or the platform's own (`organization` None): never
    one of the other kind."""
    if organization is None:
        return WebhookEndpoint.objects.filter(organization__isnull=True)
    return WebhookEndpoint.objects.filter(organization_id=getattr(organization, "pk", organization))


def webhook_endpoint_limit_check(organization: Any) -> None:
    """At most WEBHOOK_MAX_ENDPOINTS_PER_ORG endpoints per organization, and as many for the
    platform (`organization` None): every event fans out to each, and everyone shares the
    delivery workers."""
    limit = int(settings.WEBHOOK_MAX_ENDPOINTS_PER_ORG)
    if webhook_endpoints_owned_by(organization).count() >= limit:
        owner = "the platform" if organization is None else "the organization"
        raise ValidationError(
            f"{owner} already has {limit} webhook endpoints, the most allowed",
            code="limit_reached",
        )


class TooManyManualSends(Exception):
    """Test events and redeliveries past WEBHOOK_MANUAL_SEND_RATE_LIMIT for one organization
    (or the platform); `retry_after` is the seconds until the window resets."""

    def __init__(self, retry_after: int, *, platform: bool = False) -> None:
        owner = "the platform" if platform else "this organization"
        super().__init__(
            f"too many test events and redeliveries for {owner}; try again in {retry_after} s"
        )
        self.retry_after = retry_after


def webhook_manual_send_check(*, organization_id: Any) -> None:
    """Count one "send a test event" or "redeliver" against WEBHOOK_MANUAL_SEND_RATE_LIMIT for
    the organization (the platform's endpoints share one budget): each is a request to a
    receiver that a person asked for, and a loop of them would crowd the shared delivery
    workers. Counted in Redis with the other rate limits; with the cache down it fails open,
    as they do."""
    if cache_down():
        return
    bucket = f"webhook-manual:{organization_id or 'platform'}"
    try:
        usages = rate_hit([(bucket, settings.WEBHOOK_MANUAL_SEND_RATE_LIMIT)]).usages
    except Exception:  # noqa: BLE001 - fail open, as the other rate limits do
        logger.warning("webhook_manual_send_count_failed")
        return
    for usage in usages:
        if usage.exceeded:
            raise TooManyManualSends(usage.reset, platform=organization_id is None)


@transaction.atomic
def webhook_endpoint_create(
    *,
    organization: Any,
    url: str,
    description: str = "",
    event_types: list[str] | None = None,
    enabled: bool = True,
    headers: dict[str, str] | None = None,
) -> tuple[WebhookEndpoint, str]:
    """Create an endpoint with a new signing secret; returns it with the secret, which is shown
    this once (reads never return it)."""
    webhook_endpoint_limit_check(organization)
    secret = webhook_secret_new()
    endpoint = WebhookEndpoint(
        organization=organization,
        url=webhook_url_check(url),
        description=description,
        event_types=webhook_event_types_check(event_types or []),
        enabled=enabled,
        secret=secret,
        headers=json.dumps(webhook_headers_check(headers)) if headers else "",
    )
    endpoint.save(force_insert=True)
    return endpoint, secret


@transaction.atomic
def webhook_endpoint_update(*, endpoint: WebhookEndpoint, **changes: Any) -> WebhookEndpoint:
    """Change url, description, event_types, enabled or headers. Enabling clears the reason
    Autoglue disabled it for."""
    if "url" in changes:
        old_host = urlsplit(endpoint.url).hostname
        endpoint.url = webhook_url_check(changes["url"])
        if urlsplit(endpoint.url).hostname != old_host and "headers" not in changes:
            # Custom headers often carry a token meant for the old host: they do not follow
            # the URL to another one unless given again with it.
            endpoint.headers = ""
    if "description" in changes:
        endpoint.description = changes["description"]
    if "event_types" in changes:
        endpoint.event_types = webhook_event_types_check(changes["event_types"])
    if "headers" in changes:
        headers = webhook_headers_check(changes["headers"] or {})
        endpoint.headers = json.dumps(headers) if headers else ""
    resumed = False
    if "enabled" in changes:
        resumed = bool(changes["enabled"]) and not endpoint.enabled
        endpoint.enabled = bool(changes["enabled"])
        if endpoint.enabled:
            endpoint.disabled_reason = ""
            endpoint.failing_since = None
    endpoint.save()
    if resumed:  # deliveries that waited while it was off are due now (the dispatcher sends)
        WebhookDelivery.objects.filter(
            endpoint=endpoint, status=WebhookDelivery.Status.PENDING
        ).update(next_attempt_at=timezone.now())
    return endpoint


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint with its deliveries and their log."""
    endpoint.delete()


@transaction.atomic
def webhook_endpoint_rotate_secret(
    *, endpoint: WebhookEndpoint, overlap_seconds: int = 86400, force: bool = False
) -> str:
    """A new signing secret (returned, shown once). For `overlap_seconds` the previous secret
    signs beside it (two `v1,` signatures), so receivers switch without a failed check.
    Refused while a previous rotation's overlap runs, unless `force`: a second rotation would
    drop the original secret that receivers may still verify with."""
    if not 0 <= overlap_seconds <= ROTATION_OVERLAP_MAX:
        raise ValidationError(
            {"overlap_seconds": [f"must be between 0 and {ROTATION_OVERLAP_MAX}"]}, code="invalid"
        )
    ends = endpoint.previous_secret_expires_at
    if not force and endpoint.previous_secret and ends is not None and ends > timezone.now():
        raise RotationInProgress(
            f"the previous rotation's overlap runs until {ends:%Y-%m-%d %H:%M} UTC; rotating "
            "again drops the original secret (send force: true to do it anyway)"
        )
    secret = webhook_secret_new()
    endpoint.previous_secret = endpoint.secret if overlap_seconds else ""
    endpoint.previous_secret_expires_at = (
        timezone.now() + timedelta(seconds=overlap_seconds) if overlap_seconds else None
    )
    endpoint.secret = secret
    endpoint.save()
    return secret


def _endpoint_disable(endpoint_id: uuid.UUID, reason: str) -> None:
    """Turn an endpoint off for `reason`; its save writes the audit entry (resource.update with
    `enabled` and `disabled_reason`)."""
    endpoint = WebhookEndpoint.objects.select_for_update().filter(pk=endpoint_id).first()
    if endpoint is None or not endpoint.enabled:
        return
    endpoint.enabled = False
    endpoint.disabled_reason = reason[:255]
    endpoint.save(update_fields=["enabled", "disabled_reason", "updated_at"])
    logger.warning("webhook_endpoint_disabled", extra={"endpoint_id": str(endpoint_id)})


# --- the outbox ----------------------------------------------------------------------------------


@transaction.atomic  # the event and its deliveries together, also for autocommit callers
def webhook_event_record(
    *,
    type: str,  # noqa: A002 - the event's type, as the payload names it
    organization_id: Any,
    data: dict[str, Any],
    endpoints: list[WebhookEndpoint] | None = None,
    once_per: Any = None,
) -> WebhookEvent | None:
    """Write an event and one delivery per enabled endpoint that wants it, in the caller's
    transaction; their first attempts are published after commit. Nothing is written when no
    endpoint of the organization wants the type, nor for an organization this transaction is
    deleting (its members' removal is not news to anyone). With `once_per` (the subject and
    state a fact is about) the event's id is derived from it and a fact seen again writes
    nothing: a broken chain verified twice, a job claimed again, the same host key mismatch."""
    if organization_id and str(organization_id) in _deleting():
        return None
    if endpoints is None:
        # An organization's events go to its endpoints, platform events (no organization) to
        # the platform's: never across.
        endpoints = list(
            webhook_endpoints_owned_by(organization_id)
            .filter(enabled=True)
            .filter(Q(event_types=[]) | Q(event_types__contains=[type]))
        )
        if not endpoints:
            return None  # nobody listens: no row for every audited change of every organization
    event = WebhookEvent(
        organization_id=organization_id,
        type=type,
        version=VERSION,
        occurred_at=timezone.now(),
        data=data,
    )
    if once_per is not None:
        event.pk = webhook_event_id(organization_id=organization_id, type=type, once_per=once_per)
        if WebhookEvent.objects.filter(pk=event.pk).exists():
            return None
        try:
            with transaction.atomic():  # a concurrent writer of the same fact: theirs stands
                event.save(force_insert=True)
        except IntegrityError:
            return None
    else:
        event.save(force_insert=True)
    now = timezone.now()
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            organization_id=endpoint.organization_id,
            event=event,
            endpoint=endpoint,
            next_attempt_at=now,
            sent_at=now,
        )
        for endpoint in endpoints
    )
    ids = [str(delivery.pk) for delivery in deliveries]
    if ids:
        transaction.on_commit(lambda: _publish(ids))
    return event


def _deleting() -> set[str]:
    """Organizations the current transaction is deleting (see webhook_org_deleting)."""
    if not connection.in_atomic_block:
        return set()
    marked = getattr(connection, "_webhooks_deleting", None)
    if marked is None or marked[0] is not connection.atomic_blocks[0]:
        return set()
    return marked[1]


def webhook_org_deleting(*, organization_id: Any) -> None:
    """Note that the current transaction deletes this organization (Django's pre_delete, sent
    before any of its rows go): events about it are not recorded, as their rows would point at
    an organization that is gone by commit. Kept per outermost transaction, so a rolled-back
    delete does not silence a later one."""
    if not connection.in_atomic_block:
        return
    outer = connection.atomic_blocks[0]
    marked: tuple[Any, set[str]] | None = getattr(connection, "_webhooks_deleting", None)
    if marked is None or marked[0] is not outer:
        marked = (outer, set())
        connection._webhooks_deleting = marked  # type: ignore[attr-defined]
    marked[1].add(str(organization_id))


# Namespace of deterministic event ids (uuid5), for facts reported again and again.
_EVENT_ID_NAMESPACE = uuid.UUID("6f1d7a8e-4b0c-5a43-9a57-2f0d3c1e9b21")


def webhook_event_id(*, organization_id: Any, type: str, once_per: Any) -> uuid.UUID:  # noqa: A002
    """The id of the one event of `type` about `once_per` (a subject and its state)."""
    name = json.dumps([str(organization_id or ""), type, once_per], sort_keys=True, default=str)
    return uuid.uuid5(_EVENT_ID_NAMESPACE, name)


def webhook_events_existing(ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these event ids are in the outbox already (one query)."""
    return set(WebhookEvent.objects.filter(pk__in=ids).values_list("pk", flat=True))


def _publish(delivery_ids: list[str]) -> None:
    """Send one message per delivery to the `webhooks` queue (after commit). A message that is
    not sent is found by the dispatcher."""
    if not settings.JOBS_PUBLISH:
        return
    from autoglue.celery import app

    try:
        for delivery_id in delivery_ids:
            app.send_task(TASK_NAME, args=[delivery_id], queue=QUEUE)
    except Exception:  # noqa: BLE001 - the dispatcher re-sends; the change is committed
        logger.warning("webhook_publish_failed", exc_info=True)
        WebhookDelivery.objects.filter(pk__in=delivery_ids).update(sent_at=None)


@transaction.atomic
def webhook_test_send(*, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """Send a `webhook.test` event to this endpoint alone (also when it is disabled), within
    WEBHOOK_MANUAL_SEND_RATE_LIMIT (raises TooManyManualSends)."""
    webhook_manual_send_check(organization_id=endpoint.organization_id)
    event = webhook_event_record(
        type=WEBHOOK_TEST,
        organization_id=endpoint.organization_id,
        data={"endpoint_id": str(endpoint.pk), "message": "a test event from Autoglue"},
        endpoints=[endpoint],
    )
    return WebhookDelivery.objects.get(event_id=getattr(event, "pk", None), endpoint=endpoint)


@transaction.atomic
def webhook_delivery_redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Attempt a delivery again now (GitHub's redeliver): the same event, id and payload, one
    more attempt in the same log. Refused while an attempt is in flight, and past
    WEBHOOK_MANUAL_SEND_RATE_LIMIT (raises TooManyManualSends).

    Only a redelivery that is going to happen counts against the limit: the in-flight refusal
    comes first. The move below holds the row until commit, and the count after it is one
    atomic increment per caller, so concurrent callers are still bounded; one over the limit
    raises here, which rolls the move back."""
    now = timezone.now()
    moved = (
        WebhookDelivery.objects.filter(pk=delivery.pk)
        .exclude(status=WebhookDelivery.Status.DELIVERING)
        .update(
            status=WebhookDelivery.Status.PENDING,
            next_attempt_at=now,
            finished_at=None,
            sent_at=now,
            updated_at=now,
        )
    )
    if not moved:
        raise DeliveryInProgress("an attempt of this delivery is in progress")
    webhook_manual_send_check(organization_id=delivery.organization_id)
    ids = [str(delivery.pk)]
    transaction.on_commit(lambda: _publish(ids))
    delivery.refresh_from_db()
    return delivery


# --- delivering ----------------------------------------------------------------------------------


def attempt_time_limits() -> tuple[float, float]:
    """(soft, hard) Celery time limits of one attempt: a little above the request's deadline,
    so only a stuck recording (not a slow receiver) reaches them. A threads pool (the webhooks
    worker) does not enforce them; the lease is still sized from them, so it outlasts the
    request's deadline with room for the recording."""
    timeout = float(settings.WEBHOOK_TIMEOUT_SECONDS)
    return timeout + 5, timeout + 10


def _lease() -> timedelta:
    """How long a claim holds: longer than the task's hard time limit, so the lease cannot run
    out (and the delivery be claimed again) while the first worker may still be sending."""
    return timedelta(seconds=attempt_time_limits()[1] + 10)


def _claimable(now: datetime) -> Q:
    """Due and pending, or a lost lease with attempts left."""
    return Q(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now) | Q(
        status=WebhookDelivery.Status.DELIVERING, claimed_until__lt=now, attempts__lt=MAX_ATTEMPTS
    )


def _in_flight_limit() -> int:
    """Attempts one endpoint may have running at once (0: no limit)."""
    return max(int(settings.WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT), 0)


def _under_in_flight_limit(limit: int, now: datetime) -> Q:
    """The delivery's endpoint has fewer than `limit` live claims: no `limit`-th one exists (an
    expired lease is a dead worker, not a request in flight). Checked inside the claim's UPDATE
    while the claim holds the endpoint's row lock, so concurrent claims count one another."""
    live = WebhookDelivery.objects.filter(
        endpoint_id=OuterRef("endpoint_id"),
        status=WebhookDelivery.Status.DELIVERING,
        claimed_until__gte=now,
    )
    return ~Q(Exists(live[limit - 1 : limit]))


def _claim(delivery_id: Any, now: datetime) -> tuple[WebhookDelivery, WebhookAttempt] | None:
    """Claim a delivery for one attempt (its row `delivering` under a lease, the attempt's row
    `running`), or None when it is not claimable now."""
    limit = _in_flight_limit()
    with transaction.atomic():
        # The delivery with its event and endpoint, the endpoint's row locked: claims of one
        # endpoint take turns, so two cannot both count its live claims below the limit, and
        # no other claim can change the delivery's attempts until this one commits. NO KEY:
        # recording new events (their foreign key checks) is not blocked.
        delivery = (
            WebhookDelivery.objects.select_related("event", "endpoint")
            .select_for_update(no_key=True, of=("endpoint",))
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None:
            return None
        # A disabled endpoint's deliveries wait for it (test events go regardless).
        wanted = delivery.endpoint.enabled or delivery.event.type == WEBHOOK_TEST
        claimable = WebhookDelivery.objects.filter(pk=delivery_id).filter(_claimable(now))
        if limit:
            claimable = claimable.filter(_under_in_flight_limit(limit, now))
        lease = now + _lease()
        claimed = wanted and claimable.update(
            status=WebhookDelivery.Status.DELIVERING,
            claimed_until=lease,
            attempts=F("attempts") + 1,
            updated_at=now,
        )
        if not claimed:
            _fail_exhausted_lease(delivery_id, now)
            _postpone_while_disabled(delivery_id, now)
            if limit:
                _postpone_while_busy(delivery_id, now)
            return None
        # What the UPDATE wrote (the lock kept `attempts` as read).
        delivery.status = WebhookDelivery.Status.DELIVERING
        delivery.claimed_until = lease
        delivery.attempts += 1
        delivery.updated_at = now
        if delivery.attempts > 1:  # only an earlier attempt can have been left running
            _mark_lost(delivery, now)
        attempt = WebhookAttempt.objects.create(
            organization_id=delivery.organization_id,
            delivery=delivery,
            number=delivery.attempts,
            started_at=now,
        )
    return delivery, attempt


def _postpone_while_disabled(delivery_id: Any, now: datetime) -> None:
    """A due delivery whose endpoint is off waits (no attempt used) and is looked at again in
    an hour; enabling the endpoint makes its waiting deliveries due at once."""
    WebhookDelivery.objects.filter(
        pk=delivery_id,
        status=WebhookDelivery.Status.PENDING,
        next_attempt_at__lte=now,
        endpoint__enabled=False,
    ).exclude(event__type=WEBHOOK_TEST).update(
        next_attempt_at=now + DISABLED_RECHECK, updated_at=now
    )


def _postpone_while_busy(delivery_id: Any, now: datetime) -> None:
    """A claimable delivery whose endpoint has WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT attempts
    running waits a moment (no attempt used, no failure counted): one slow endpoint must not
    take every delivery slot. The dispatcher publishes it again once it is due. A lost lease
    becomes pending again; the next claim marks its attempt lost."""
    WebhookDelivery.objects.filter(pk=delivery_id).filter(_claimable(now)).filter(
        Q(endpoint__enabled=True) | Q(event__type=WEBHOOK_TEST)
    ).update(
        status=WebhookDelivery.Status.PENDING,
        next_attempt_at=now + _busy_postpone(),
        claimed_until=None,
        updated_at=now,
    )


def _unclaimed_after() -> timedelta:
    """How long a published message may go unclaimed before it is taken for lost."""
    return timedelta(seconds=float(settings.WEBHOOK_UNCLAIMED_AFTER_SECONDS))


def _busy_postpone() -> timedelta:
    return timedelta(seconds=float(settings.WEBHOOK_BUSY_POSTPONE_SECONDS))


def _mark_lost(delivery: WebhookDelivery, now: datetime) -> None:
    WebhookAttempt.objects.filter(delivery=delivery, outcome=WebhookAttempt.Outcome.RUNNING).update(
        outcome=WebhookAttempt.Outcome.LOST,
        error="the worker stopped before this attempt ended",
        updated_at=now,
    )


def _fail_exhausted_lease(delivery_id: Any, now: datetime) -> None:
    """A lease that ran out on the last allowed attempt: the delivery is failed (not retried
    forever), and the endpoint checked for auto-disable like any other final failure."""
    failed = WebhookDelivery.objects.filter(
        pk=delivery_id,
        status=WebhookDelivery.Status.DELIVERING,
        claimed_until__lt=now,
        attempts__gte=MAX_ATTEMPTS,
    ).update(
        status=WebhookDelivery.Status.FAILED, finished_at=now, claimed_until=None, updated_at=now
    )
    if not failed:
        return
    delivery = WebhookDelivery.objects.select_related("event", "endpoint").get(pk=delivery_id)
    _mark_lost(delivery, now)
    WebhookEndpoint.objects.filter(pk=delivery.endpoint_id, failing_since=None).update(
        failing_since=now
    )
    _auto_disable_check(delivery)


def webhook_payload(event: WebhookEvent) -> bytes:
    """The request body: the event's envelope as compact JSON."""
    envelope = {
        "id": str(event.pk),
        "type": event.type,
        "version": event.version,
        "timestamp": event.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "organization_id": str(event.organization_id) if event.organization_id else None,
        "data": event.data,
    }
    return json.dumps(envelope, separators=(",", ":"), sort_keys=True).encode()


def webhook_signature(endpoint: WebhookEndpoint, msg_id: str, at: datetime, body: bytes) -> str:
    """`webhook-signature`: a `v1,` signature by the current secret, and one by the previous
    secret while its overlap lasts, space-separated."""
    keys = [endpoint.secret]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret and expires is not None and expires > at:
        keys.append(endpoint.previous_secret)
    text = body.decode()
    return " ".join(Webhook(key).sign(msg_id, at, text) for key in keys)


def _request_headers(endpoint: WebhookEndpoint, event: WebhookEvent, body: bytes) -> dict:
    at = datetime.now(UTC)
    msg_id = str(event.pk)
    return {
        **webhook_endpoint_headers(endpoint),
        "Content-Type": "application/json",
        "User-Agent": "Autoglue-Webhooks/1",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": webhook_signature(endpoint, msg_id, at, body),
    }


def _send(delivery: WebhookDelivery) -> tuple[int | None, bytes, str]:
    """(response status, first bytes of the body, error) of one request."""
    endpoint = delivery.endpoint
    if not endpoint.enabled and delivery.event.type != WEBHOOK_TEST:
        return None, b"", "the endpoint is disabled"
    try:
        webhook_url_check(endpoint.url)
    except ValidationError as exc:
        return None, b"", f"url {exc.messages[0]}"
    body = webhook_payload(delivery.event)
    try:
        answer = clients.post(
            url=endpoint.url,
            body=body,
            headers=_request_headers(endpoint, delivery.event, body),
            timeout=float(settings.WEBHOOK_TIMEOUT_SECONDS),
            body_limit=RESPONSE_BODY_BYTES,
        )
    except clients.TargetRefused as exc:
        return None, b"", f"refused: {exc}"
    # Generic reasons only: which exception a host's port raised would map its services.
    except TimeoutError:
        return None, b"", "timed out"
    except ssl.SSLError:
        return None, b"", "TLS failed"
    except (OSError, HTTPException):
        return None, b"", "connection failed"
    error = "" if 200 <= answer.status < 300 else f"answered {answer.status}"
    return answer.status, answer.body, error


def _next_attempt_at(attempts: int, now: datetime) -> datetime:
    delay = RETRY_SCHEDULE[min(attempts, MAX_ATTEMPTS - 1) - 1]
    return now + timedelta(seconds=delay * random.uniform(1 - JITTER, 1 + JITTER))  # noqa: S311 - jitter, not a secret


def webhook_delivery_attempt(*, delivery_id: Any) -> str:
    """Claim a delivery, make one request, and record it; the delivery's status afterwards
    ("skipped" when it was not claimable: another worker has it, or it is not due)."""
    now = timezone.now()
    claimed = _claim(delivery_id, now)
    if claimed is None:
        return "skipped"
    delivery, attempt = claimed
    started = time.monotonic()
    status, body, error = _send(delivery)
    ms = int((time.monotonic() - started) * 1000)
    ok = not error
    ended = timezone.now()
    try:
        with transaction.atomic():
            text = _db_text(body.decode("utf-8", "replace"))
            _attempt_finish(attempt, ms, ok, status, text, _db_text(error))
            outcome = _record_outcome(delivery, ok, status, ended)
    except DatabaseError:
        # Whatever the receiver answered must not leave the delivery `delivering` (and resent
        # forever): the attempt is recorded as failed, without the part that did not save.
        logger.warning("webhook_attempt_record_failed", extra={"delivery_id": str(delivery.pk)})
        with transaction.atomic():
            _attempt_finish(attempt, ms, False, None, "", "the answer could not be recorded")
            outcome = _record_outcome(delivery, False, None, ended)
    if _in_flight_limit():
        _hand_on(delivery.endpoint_id, timezone.now())
    return outcome


def _db_text(text: str) -> str:
    """Text PostgreSQL accepts: no NUL character, no lone surrogate."""
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def _attempt_finish(
    attempt: WebhookAttempt, ms: int, ok: bool, status: int | None, body: str, error: str
) -> None:
    WebhookAttempt.objects.filter(pk=attempt.pk).update(
        outcome=WebhookAttempt.Outcome.SUCCEEDED if ok else WebhookAttempt.Outcome.FAILED,
        duration_ms=ms,
        response_status=status,
        response_body=body,
        error=error[:500],
        updated_at=timezone.now(),
    )


def _record_outcome(delivery: WebhookDelivery, ok: bool, status: int | None, now: datetime) -> str:
    current = WebhookDelivery.objects.filter(
        pk=delivery.pk, status=WebhookDelivery.Status.DELIVERING, attempts=delivery.attempts
    )
    endpoints = WebhookEndpoint.objects.filter(pk=delivery.endpoint_id)
    common = {"response_status": status, "claimed_until": None, "updated_at": now}
    if ok:
        current.update(status=WebhookDelivery.Status.SUCCEEDED, finished_at=now, **common)
        # Not skipped on the claim's reading: a failure recorded since must be cleared by this
        # success, or auto-disable could count it as a day without one.
        endpoints.exclude(failing_since=None).update(failing_since=None)
        return WebhookDelivery.Status.SUCCEEDED
    endpoints.filter(failing_since=None).update(failing_since=now)
    # An endpoint turned off mid-attempt: the retry waits for it (see _postpone_while_disabled).
    if delivery.attempts < MAX_ATTEMPTS:
        current.update(
            status=WebhookDelivery.Status.PENDING,
            next_attempt_at=_next_attempt_at(delivery.attempts, now),
            **common,
        )
        return WebhookDelivery.Status.PENDING
    if current.update(status=WebhookDelivery.Status.FAILED, finished_at=now, **common):
        _auto_disable_check(delivery)
    return WebhookDelivery.Status.FAILED


def _auto_disable_check(delivery: WebhookDelivery) -> None:
    """After a delivery failed for good: disable its endpoint when every attempt of a whole
    retry schedule (about a day) failed and nothing succeeded since the first of them."""
    if not delivery.endpoint.enabled:
        return
    failing_since = (
        WebhookEndpoint.objects.filter(pk=delivery.endpoint_id)
        .values_list("failing_since", flat=True)
        .first()
    )
    first_ended = (
        WebhookAttempt.objects.filter(delivery=delivery, number=1)
        .values_list("updated_at", flat=True)
        .first()
    )
    if failing_since is not None and first_ended is not None and failing_since <= first_ended:
        _endpoint_disable(
            delivery.endpoint_id,
            f"every attempt failed since {failing_since:%Y-%m-%d %H:%M} UTC "
            f"({MAX_ATTEMPTS} attempts of delivery {delivery.pk})",
        )


def _queue_length() -> int | None:
    """Messages waiting on the `webhooks` queue (None: unknown, the broker is unreachable)."""
    from kombu.exceptions import ChannelError

    from autoglue.celery import app

    try:
        with app.connection_for_write() as conn:
            declared = conn.default_channel.queue_declare(queue=QUEUE, passive=True)
            return int(declared.message_count)
    except ChannelError:
        # The broker answered that the queue does not exist: Redis drops a list once it is
        # empty, which is exactly when a worker killed mid-claim has taken the last message.
        return 0
    except Exception:  # noqa: BLE001 - unknown means "do not republish what may be queued"
        return None


def webhook_dispatch(*, now: datetime | None = None) -> dict[str, int]:
    """Publish what has no message on its way, marking it sent:

    - retries that are due and not yet published for this attempt (a published message carries
      `sent_at` at or after the attempt's `next_attempt_at`);
    - deliveries whose lease ran out (the worker died mid-request), once per lease;
    - messages that failed to publish (`sent_at` cleared);
    - and, only while the queue is short (`QUEUE_SHORT`), messages published more than
      WEBHOOK_UNCLAIMED_AFTER_SECONDS ago and never claimed: a worker killed between taking
      the message and claiming it (Redis gives an unacknowledged message back only after its
      visibility timeout, hours), or a broker restart. A backlog is slow, not lost, and
      republishing it would double it, hence the queue's length first. A message that was not
      lost after all (a worker holding it still) finds the delivery claimed or no longer due:
      the claim is conditional, so it cannot be sent twice.

    Runs on the maintenance queue, so a backlog on `webhooks` does not delay it."""
    now = now or timezone.now()
    due = Q(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
    lost_lease = Q(status=WebhookDelivery.Status.DELIVERING, claimed_until__lt=now)
    unsent = (
        Q(sent_at__isnull=True)
        | (due & Q(sent_at__lt=F("next_attempt_at")))
        | (lost_lease & Q(sent_at__lt=F("claimed_until")))
    )
    wanted = (due | lost_lease) & unsent
    length = _queue_length() if settings.JOBS_PUBLISH else 0
    if length is not None and length < QUEUE_SHORT:
        wanted |= (due | lost_lease) & Q(sent_at__lt=now - _unclaimed_after())
    limit = _in_flight_limit()
    candidates = WebhookDelivery.objects.filter(wanted)
    if limit:
        candidates = WebhookDelivery.objects.filter(pk__in=_within_free_slots(wanted, limit, now))
    with transaction.atomic():
        ids = [
            str(pk)
            for pk in WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(pk__in=candidates.values("pk"))
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:DISPATCH_BATCH]
        ]
        if ids:
            WebhookDelivery.objects.filter(pk__in=ids).update(sent_at=now)
            transaction.on_commit(lambda: _publish(ids))
    return {"published": len(ids)}


def _within_free_slots(wanted: Q, limit: int, now: datetime) -> list[Any]:
    """The ids of `wanted` deliveries, per endpoint at most its free slots (`limit` less its live
    claims and its messages on their way), earliest due first: a message past the limit would
    only be refused and postponed again, and a busy endpoint's backlog republished every run
    would flood the queue. Each attempt that ends hands its slot on (`_hand_on`).

    One statement: the wanted rows ranked per endpoint, joined to each endpoint's occupied
    count computed once (a GROUP BY), not recounted per row: a correlated count made a backlog
    of 20,000 for one endpoint cost 20 s a run, and the dispatcher serves every organization."""
    occupied = (
        WebhookDelivery.objects.filter(
            Q(status=WebhookDelivery.Status.DELIVERING, claimed_until__gte=now)
            | (
                Q(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
                & Q(sent_at__gte=F("next_attempt_at"))
                & Q(sent_at__gte=now - _unclaimed_after())
            )
        )
        .order_by()
        .values("endpoint_id")
        .annotate(busy=Count("pk"))
        .values("endpoint_id", "busy")
    )
    ranked = (
        WebhookDelivery.objects.filter(wanted)
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("endpoint_id")],
                order_by=[F("next_attempt_at").asc(), F("pk").asc()],
            )
        )
        .order_by()
        .values("pk", "endpoint_id", "next_attempt_at", "rank")
    )
    ranked_sql, ranked_params = ranked.query.sql_with_params()
    occupied_sql, occupied_params = occupied.query.sql_with_params()
    # Column names are the aliases `values()` gives: `pk`, `endpoint_id`, `next_attempt_at`, and
    # the annotations `rank` and `busy`. At most a batch of ids, earliest due first, as the
    # caller publishes.
    sql = (
        f"SELECT ranked.pk FROM ({ranked_sql}) AS ranked "  # noqa: S608 - both compiled by the ORM
        f"LEFT JOIN ({occupied_sql}) AS occupied ON occupied.endpoint_id = ranked.endpoint_id "
        "WHERE ranked.rank <= %s - COALESCE(occupied.busy, 0) "
        "ORDER BY ranked.next_attempt_at LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*ranked_params, *occupied_params, limit, DISPATCH_BATCH])
        return [row[0] for row in cursor.fetchall()]


def _hand_on(endpoint_id: Any, now: datetime) -> None:
    """Publish the endpoint's earliest delivery that was refused for its in-flight limit and has
    no message on its way, now that an attempt of it ended: a busy endpoint's backlog moves as
    fast as its receiver answers, not at the dispatcher's pace."""
    with transaction.atomic():
        ids = [
            str(pk)
            for pk in WebhookDelivery.objects.select_for_update(skip_locked=True)
            .filter(
                endpoint_id=endpoint_id,
                status=WebhookDelivery.Status.PENDING,
                next_attempt_at__lte=now + _busy_postpone(),
                sent_at__lt=F("next_attempt_at"),
            )
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:1]
        ]
        if ids:
            WebhookDelivery.objects.filter(pk__in=ids).update(next_attempt_at=now, sent_at=now)
            transaction.on_commit(lambda: _publish(ids))


# --- retention -----------------------------------------------------------------------------------


def webhook_deliveries_purge(
    *, now: datetime | None = None, should_stop: Callable[[], bool] = lambda: False
) -> dict[str, int]:
    """Delete finished deliveries (with their attempts) older than JOB_RETENTION_DAYS, and the
    events left with no delivery that are as old, MAINTENANCE_DELETE_BATCH_SIZE rows at a time
    (only their ids are read), stopping early when `should_stop()` says so (the next run goes
    on). Pending ones are kept, however old."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.JOB_RETENTION_DAYS)
    final = [WebhookDelivery.Status.SUCCEEDED, WebhookDelivery.Status.FAILED]
    old_deliveries = WebhookDelivery.objects.filter(status__in=final, finished_at__lt=cutoff)
    deleted = _delete_batched(old_deliveries, should_stop)
    gone = 0
    if not should_stop():
        orphans = WebhookEvent.objects.filter(occurred_at__lt=cutoff, deliveries=None)
        gone = _delete_batched(orphans, should_stop)
    return {"deliveries_deleted": deleted, "events_deleted": gone}


def _delete_batched(queryset: Any, should_stop: Callable[[], bool]) -> int:
    model, size, deleted = queryset.model, max(int(settings.MAINTENANCE_DELETE_BATCH_SIZE), 1), 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[:size])
        if ids:
            removed = model._default_manager.filter(pk__in=ids).delete()[1]
            deleted += removed.get(model._meta.label, 0)
        if len(ids) < size or should_stop():
            return deleted

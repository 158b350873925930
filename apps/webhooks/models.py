"""Webhook endpoints, the event outbox, deliveries and their attempts."""

from __future__ import annotations

import hashlib
from urllib.parse import urlsplit

from django.db import models

from apps.core.fields import EncryptedTextField
from apps.core.models import OrgOwnedModel, TimeStampedModel


def url_shown(url: str) -> str:
    """A URL as logs and pages name it: scheme and host, the path and query (which may carry
    a token) replaced by `…` and a short digest, so a change still shows as one."""
    if not url:
        return ""
    parts = urlsplit(url)
    try:
        host = parts.netloc.rsplit("@", 1)[-1]
    except ValueError:
        host = ""
    if not (parts.path.strip("/") or parts.query):
        return f"{parts.scheme}://{host}/"
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]
    return f"{parts.scheme}://{host}/… ({digest})"


def _platform_or_org() -> models.ForeignKey:
    """The owner of an endpoint, delivery or attempt: an organization, or none for the
    platform's own (platform admins' endpoints, which receive platform events such as backups).
    A row without one is never matched by a tenant's organization filter."""
    return models.ForeignKey(
        "orgs.Organization",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=True,
    )


class WebhookEndpoint(OrgOwnedModel):
    """A URL of an organization's (or, with no organization, of the platform's) that receives
    signed events.

    `secret` signs every request (Standard Webhooks, `whsec_…`); after a rotation the previous
    secret keeps signing beside it until `previous_secret_expires_at`, so receivers can switch
    without missing a request. `headers` is a JSON object of extra request headers, encrypted
    like any other secret (they often carry a token). `event_types` empty means every event.
    """

    organization = _platform_or_org()
    url = models.CharField(max_length=2000)
    description = models.CharField(max_length=255, blank=True, default="")
    event_types = models.JSONField(default=list, blank=True)
    enabled = models.BooleanField(default=True)
    secret = EncryptedTextField()
    previous_secret = EncryptedTextField(blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    headers = EncryptedTextField(blank=True, default="")
    # Why Autoglue turned the endpoint off (empty when a person did, or it is on).
    disabled_reason = models.CharField(max_length=255, blank=True, default="")
    # The first failed attempt since the last success; None while the endpoint answers.
    failing_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    # Audit entries show the URL without its path and query (apps.audit.redaction).
    AUDIT_SHOWN = {"url": url_shown}

    def __str__(self) -> str:
        return self.description or url_shown(self.url)[:100]


class WebhookEvent(TimeStampedModel):
    """One event in the outbox, written in the transaction of the change it describes. The
    payload is documented per type (docs/webhooks.md) and never holds a secret. Platform events
    (backups) have no organization."""

    organization = models.ForeignKey(
        "orgs.Organization", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    type = models.CharField(max_length=100, db_index=True)
    version = models.PositiveSmallIntegerField(default=1)
    occurred_at = models.DateTimeField()
    data = models.JSONField(default=dict)

    class Meta:
        ordering = ["occurred_at", "id"]

    def __str__(self) -> str:
        return f"{self.type} {self.pk}"


class WebhookDelivery(OrgOwnedModel):
    """One event for one endpoint: exactly one row per pair, whatever retries or redeliveries
    follow. A worker claims it with a conditional update (status `delivering`, a lease in
    `claimed_until`); a lease that runs out (the worker died) makes it claimable again."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERING = "delivering"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    organization = _platform_or_org()
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    # When its message was last published (the dispatcher re-sends only stale ones).
    sent_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["event", "endpoint"], name="%(app_label)s_%(class)s_unique_event_endpoint"
            )
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            # An endpoint's attempts in flight, counted at every claim (the in-flight limit).
            models.Index(
                fields=["endpoint", "claimed_until"],
                condition=models.Q(status="delivering"),
                name="webhooks_delivery_in_flight",
            ),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk}"


class WebhookAttempt(OrgOwnedModel):
    """One HTTP request of a delivery: written when it starts (outcome `running`) and completed
    when it ends; one a dead worker left running is marked `lost` by the next claim."""

    class Outcome(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        LOST = "lost"

    organization = _platform_or_org()
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.RUNNING)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    # The first bytes of the response body (WEBHOOK_RESPONSE_BODY_BYTES), as text.
    response_body = models.TextField(blank=True, default="")
    error = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["number"]
        constraints = [
            models.UniqueConstraint(
                fields=["delivery", "number"], name="%(app_label)s_%(class)s_unique_delivery_number"
            )
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}"

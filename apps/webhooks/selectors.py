"""Reads of the delivery log."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.webhooks.models import WebhookDelivery, WebhookEndpoint


def webhook_deliveries_of(*, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    """An endpoint's deliveries, newest first, with their event."""
    owner = (
        Q(organization__isnull=True)
        if endpoint.organization_id is None
        else Q(organization_id=endpoint.organization_id)
    )
    return (
        WebhookDelivery.objects.filter(owner, endpoint_id=endpoint.pk)
        .select_related("event")
        .order_by("-created_at", "-id")
    )


def webhook_deliveries_due_exist() -> bool:
    """Whether any delivery is waiting for a webhooks worker: pending and due, or `delivering`
    under a lease that ran out (readyz's "no consumer" check)."""
    now = timezone.now()
    return WebhookDelivery.objects.filter(
        Q(status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now)
        | Q(status=WebhookDelivery.Status.DELIVERING, claimed_until__lt=now)
    ).exists()

"""Reads of the delivery log."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.webhooks.models import WebhookDelivery, WebhookEndpoint


def webhook_deliveries_of(*, endpoint: WebhookEndpoint) -> QuerySet[WebhookDelivery]:
    """An endpoint's deliveries, newest first, with their event."""
    return (
        WebhookDelivery.objects.filter(
            endpoint_id=endpoint.pk, organization_id=endpoint.organization_id
        )
        .select_related("event")
        .order_by("-created_at", "-id")
    )

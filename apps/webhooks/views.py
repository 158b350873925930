"""Webhook endpoints and their delivery log: an organization's, for its owners and admins, and
the platform's own, for platform admins (beyond the original's contract; docs/webhooks.md)."""

from __future__ import annotations

from typing import Any, ClassVar

from drf_spectacular.utils import extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api.errors import APIError, conflict, not_found
from apps.core.api.pagination import list_response
from apps.core.api.responses import no_store
from apps.core.api.viewsets import OrgScopedModelViewSet, PlatformScopedModelViewSet
from apps.core.permissions import Perm
from apps.core.tenancy import parse_uuid
from apps.webhooks import selectors, services
from apps.webhooks.models import WebhookDelivery, WebhookEndpoint
from apps.webhooks.serializers import (
    RotateSecretSerializer,
    SecretSerializer,
    WebhookDeliveryDetailSerializer,
    WebhookDeliverySerializer,
    WebhookEndpointCreatedSerializer,
    WebhookEndpointSerializer,
)

_DELIVERY = r"deliveries/(?P<delivery_id>[^/]+)"


def _too_many(exc: services.TooManyManualSends) -> APIError:
    return APIError(429, "rate_limited", str(exc), retry_after=exc.retry_after)


class _WebhookEndpointRoutes(viewsets.GenericViewSet):
    """Endpoints (CRUD), rotate-secret, test, and the delivery log with redelivery
    (`POST …/{id}/deliveries/{delivery_id}/attempts`, GitHub's shape), for whoever owns them:
    `self.organization` is the tenant's organization on /webhooks and None (the platform) on
    /admin/webhooks. The base viewset scopes `get_object` and `get_queryset` to that owner."""

    queryset = WebhookEndpoint.objects.all()
    serializer_class = WebhookEndpointSerializer
    invalid_id_code = "invalid_webhook_id"
    not_found_code = "webhook_not_found"
    # Given by the scoping base (an organization, or None for the platform); an annotation
    # only, so it does not hide the base's.
    organization: Any

    @extend_schema(responses={201: WebhookEndpointCreatedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        payload = WebhookEndpointSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        endpoint, secret = services.webhook_endpoint_create(
            organization=self.organization, **payload.validated_data
        )
        data = WebhookEndpointSerializer(endpoint).data
        return no_store(Response({**data, "secret": secret}, status=status.HTTP_201_CREATED))

    def perform_update(self, serializer: Any) -> None:
        services.webhook_endpoint_update(endpoint=serializer.instance, **serializer.validated_data)

    def perform_destroy(self, instance: WebhookEndpoint) -> None:
        services.webhook_endpoint_delete(endpoint=instance)

    @extend_schema(request=RotateSecretSerializer, responses={200: SecretSerializer})
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        endpoint = self.get_object()
        payload = RotateSecretSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            secret = services.webhook_endpoint_rotate_secret(
                endpoint=endpoint,
                overlap_seconds=payload.validated_data["overlap_seconds"],
                force=payload.validated_data["force"],
            )
        except services.RotationInProgress as exc:
            raise conflict("rotation_in_progress", str(exc)) from None
        body = {"secret": secret, "secret_rotation_ends_at": endpoint.previous_secret_expires_at}
        return no_store(Response(SecretSerializer(body).data))

    @extend_schema(request=None, responses={202: WebhookDeliverySerializer})
    @action(detail=True, methods=["post"], url_path="test")
    def test(self, request: Request, pk: str | None = None) -> Response:
        try:
            delivery = services.webhook_test_send(endpoint=self.get_object())
        except services.TooManyManualSends as exc:
            raise _too_many(exc) from None
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(responses={200: WebhookDeliverySerializer(many=True)})
    @action(detail=True, methods=["get"], url_path="deliveries")
    def deliveries(self, request: Request, pk: str | None = None) -> Response:
        queryset = selectors.webhook_deliveries_of(endpoint=self.get_object())
        return list_response(request, queryset, WebhookDeliverySerializer, self)

    def _delivery(self, delivery_id: str) -> WebhookDelivery:
        endpoint = self.get_object()
        pk = parse_uuid(delivery_id, code="invalid_delivery_id")
        delivery = (
            selectors.webhook_deliveries_of(endpoint=endpoint)
            .prefetch_related("log")
            .filter(pk=pk)
            .first()
        )
        if delivery is None:
            raise not_found("delivery_not_found", "delivery not found")
        return delivery

    @extend_schema(responses={200: WebhookDeliveryDetailSerializer})
    @action(detail=True, methods=["get"], url_path=_DELIVERY)
    def delivery(self, request: Request, pk: str | None = None, delivery_id: str = "") -> Response:
        return Response(WebhookDeliveryDetailSerializer(self._delivery(delivery_id)).data)

    @extend_schema(request=None, responses={202: WebhookDeliverySerializer})
    @action(detail=True, methods=["post"], url_path=_DELIVERY + "/attempts")
    def redeliver(self, request: Request, pk: str | None = None, delivery_id: str = "") -> Response:
        try:
            delivery = services.webhook_delivery_redeliver(delivery=self._delivery(delivery_id))
        except services.DeliveryInProgress as exc:
            raise conflict("delivery_in_progress", str(exc)) from None
        except services.TooManyManualSends as exc:
            raise _too_many(exc) from None
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


@extend_schema(tags=["Webhooks"])
class WebhookEndpointViewSet(_WebhookEndpointRoutes, OrgScopedModelViewSet):
    """/webhooks: an organization's endpoints, for its owners and admins."""

    required_permissions: ClassVar[dict[str, Perm]] = dict.fromkeys(
        (
            "list",
            "create",
            "retrieve",
            "partial_update",
            "destroy",
            "rotate_secret",
            "test",
            "deliveries",
            "delivery",
            "redeliver",
        ),
        Perm.MANAGE_ORG,
    )


@extend_schema(tags=["Webhooks (platform)"])
class PlatformWebhookEndpointViewSet(_WebhookEndpointRoutes, PlatformScopedModelViewSet):
    """/admin/webhooks: the platform's own endpoints (platform events: backups, the platform's
    audit chain), for platform admins; the same shapes and actions as /webhooks."""

"""Wire shapes of endpoints and the delivery log. Secrets never appear in a read: the signing
secret is answered once (create, rotate) and custom headers are listed by name only."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from apps.webhooks import services
from apps.webhooks.catalogue import EVENT_TYPES
from apps.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint


def _checked(check: Any, value: Any) -> Any:
    try:
        return check(value)
    except DjangoValidationError as exc:
        raise serializers.ValidationError(exc.messages) from None


class WebhookEndpointSerializer(serializers.ModelSerializer):
    url = serializers.CharField(max_length=services.URL_MAX)
    description = serializers.CharField(max_length=255, required=False, allow_blank=True)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPES), required=False, max_length=100
    )
    enabled = serializers.BooleanField(required=False)
    headers = serializers.DictField(
        child=serializers.CharField(max_length=services.HEADER_VALUE_MAX, allow_blank=True),
        required=False,
        write_only=True,
        help_text="Extra request headers (stored encrypted; reads list their names only).",
    )
    header_names = serializers.SerializerMethodField()
    secret_rotation_ends_at = serializers.DateTimeField(
        source="previous_secret_expires_at", read_only=True, allow_null=True
    )

    class Meta:
        model = WebhookEndpoint
        fields = [
            "id",
            "url",
            "description",
            "event_types",
            "enabled",
            "headers",
            "header_names",
            "disabled_reason",
            "secret_rotation_ends_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "disabled_reason", "created_at", "updated_at"]

    def get_header_names(self, obj: WebhookEndpoint) -> list[str]:
        return sorted(services.webhook_endpoint_headers(obj))

    def validate_url(self, value: str) -> str:
        return _checked(services.webhook_url_check, value)

    def validate_headers(self, value: dict) -> dict:
        return _checked(services.webhook_headers_check, value)

    def validate_event_types(self, value: list) -> list:
        return _checked(services.webhook_event_types_check, value)


class WebhookEndpointCreatedSerializer(WebhookEndpointSerializer):
    """The create answer: the endpoint and its signing secret, shown this once."""

    secret = serializers.CharField(read_only=True)

    class Meta(WebhookEndpointSerializer.Meta):
        fields = [*WebhookEndpointSerializer.Meta.fields, "secret"]


class RotateSecretSerializer(serializers.Serializer):
    overlap_seconds = serializers.IntegerField(
        min_value=0, max_value=services.ROTATION_OVERLAP_MAX, required=False, default=86400
    )
    force = serializers.BooleanField(required=False, default=False)


class SecretSerializer(serializers.Serializer):
    secret = serializers.CharField(read_only=True)
    secret_rotation_ends_at = serializers.DateTimeField(read_only=True, allow_null=True)


class WebhookAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookAttempt
        fields = [
            "number",
            "started_at",
            "duration_ms",
            "outcome",
            "response_status",
            "response_body",
            "error",
        ]
        read_only_fields = fields


class WebhookDeliverySerializer(serializers.ModelSerializer):
    event_id = serializers.UUIDField(source="event.id", read_only=True)
    event_type = serializers.CharField(source="event.type", read_only=True)

    class Meta:
        model = WebhookDelivery
        fields = [
            "id",
            "event_id",
            "event_type",
            "status",
            "attempts",
            "response_status",
            "next_attempt_at",
            "created_at",
            "finished_at",
        ]
        read_only_fields = fields


class WebhookDeliveryDetailSerializer(WebhookDeliverySerializer):
    """One delivery with the payload it sends and every attempt."""

    payload = serializers.JSONField(source="event.data", read_only=True)
    attempts_log = WebhookAttemptSerializer(source="log", many=True, read_only=True)

    class Meta(WebhookDeliverySerializer.Meta):
        fields = [*WebhookDeliverySerializer.Meta.fields, "payload", "attempts_log"]
        read_only_fields = fields

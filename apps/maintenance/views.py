"""Expiry warnings for an organization's admins."""

from __future__ import annotations

from typing import ClassVar

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins

from apps.accounts.models import APIKey
from apps.core.api.errors import bad_request
from apps.core.api.viewsets import OrgScopedViewSet
from apps.core.permissions import Perm
from apps.maintenance.selectors import expiring_soon
from apps.maintenance.serializers import ExpiringKeySerializer

MAX_WINDOW_DAYS = 365


@extend_schema_view(
    list=extend_schema(
        summary="Org keys expiring soon",
        parameters=[
            OpenApiParameter(
                "within_days",
                int,
                description="Window in days (0-365); EXPIRY_WARNING_DAYS by default.",
            )
        ],
    )
)
class ExpiringKeyViewSet(mixins.ListModelMixin, OrgScopedViewSet):
    """GET /expiring-keys?within_days=N: the organization's live org keys that expire within
    N days (EXPIRY_WARNING_DAYS by default), soonest first. Owners and admins only: it is about
    the organization's credentials, like managing its keys."""

    queryset = APIKey.objects.filter(is_ephemeral=False, scope=APIKey.Scope.ORG).order_by(
        "expires_at", "id"
    )
    serializer_class = ExpiringKeySerializer
    required_permissions: ClassVar = {"list": Perm.MANAGE_KEYS}

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        raw = self.request.query_params.get("within_days", str(settings.EXPIRY_WARNING_DAYS))
        try:
            days = int(raw)
        except ValueError:
            days = -1
        if not 0 <= days <= MAX_WINDOW_DAYS:
            raise bad_request(
                "validation_error", f"within_days: must be an integer from 0 to {MAX_WINDOW_DAYS}"
            )
        return queryset.filter(expiring_soon(now=timezone.now(), within_days=days))

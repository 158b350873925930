"""Query filters of the infrastructure list routes (the original's, with the same names)."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet

from apps.core.api.errors import bad_request
from apps.infrastructure import registry
from apps.infrastructure.models import Credential, Server, SSHKey


class SSHKeyFilterSet(django_filters.FilterSet):
    """`?unattached=true`: only keys no server uses (needs the `server_count` annotation)."""

    unattached = django_filters.CharFilter(method="filter_unattached")

    class Meta:
        model = SSHKey
        fields: list[str] = []

    def filter_unattached(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value.strip().lower() in ("true", "1", "yes"):
            return queryset.filter(server_count=0)
        return queryset


class ServerFilterSet(django_filters.FilterSet):
    """`?status=` (validated: 400 `status_invalid`) and `?role=` (exact)."""

    status = django_filters.CharFilter(method="filter_status")
    role = django_filters.CharFilter(field_name="role")

    class Meta:
        model = Server
        fields: list[str] = []

    def filter_status(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        status = value.strip().lower()
        if status not in Server.Status.values:
            raise bad_request(
                "status_invalid", f"status: must be one of {', '.join(Server.Status.values)}"
            )
        return queryset.filter(status=status)


class CredentialFilterSet(django_filters.FilterSet):
    """`?credential_provider=`, `?kind=`, `?scope_kind=` (the `credential_provider` alias of
    the provider-wide scope kind is accepted here too)."""

    credential_provider = django_filters.CharFilter(field_name="provider")
    kind = django_filters.CharFilter(field_name="kind")
    scope_kind = django_filters.CharFilter(method="filter_scope_kind")

    class Meta:
        model = Credential
        fields: list[str] = []

    def filter_scope_kind(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(scope_kind=registry.normalize_scope_kind(value))

"""Query filters of the DNS list routes (the original's names)."""

from __future__ import annotations

import django_filters
from django.db.models import QuerySet

from apps.core.api.errors import bad_request
from apps.dns.models import Domain, RecordSet
from apps.dns.names import InvalidName, normalize_record_name


def _status(queryset: QuerySet, value: str, choices: list[str]) -> QuerySet:
    status = value.strip().lower()
    if status not in choices:
        raise bad_request("validation_error", f"status: one of {', '.join(choices)}")
    return queryset.filter(status=status)


class DomainFilterSet(django_filters.FilterSet):
    """`?domain_name=` (exact, normalized), `?status=`, `?q=` (name contains)."""

    domain_name = django_filters.CharFilter(method="filter_domain_name")
    status = django_filters.CharFilter(method="filter_status")
    q = django_filters.CharFilter(field_name="domain_name", lookup_expr="icontains")

    class Meta:
        model = Domain
        fields: list[str] = []

    def filter_domain_name(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(domain_name=value.strip().lower().rstrip("."))

    def filter_status(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return _status(queryset, value, Domain.Status.values)


class RecordSetFilterSet(django_filters.FilterSet):
    """`?name=` (relative, apex or FQDN: normalized as on create), `?type=`, `?status=`."""

    name = django_filters.CharFilter(method="filter_name")
    type = django_filters.CharFilter(method="filter_type")
    status = django_filters.CharFilter(method="filter_status")

    class Meta:
        model = RecordSet
        fields: list[str] = []

    def __init__(self, *args: object, domain_name: str = "", **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.domain_name = domain_name

    def filter_name(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        try:
            normalized = normalize_record_name(value, self.domain_name)
        except InvalidName:
            return queryset.none()
        return queryset.filter(name=normalized)

    def filter_type(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(type=value.strip().upper())

    def filter_status(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return _status(queryset, value, RecordSet.Status.values)

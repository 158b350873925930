from __future__ import annotations

import django_filters

from apps.audit.models import AuditEntry


class AuditEntryFilterSet(django_filters.FilterSet):
    """`?event=`, `?actor_type=`, `?actor_id=`, `?object_type=`, `?object_id=`, `?request_id=`,
    `?since=` / `?until=` (RFC 3339)."""

    since = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = AuditEntry
        fields = ["event", "actor_type", "actor_id", "object_type", "object_id", "request_id"]

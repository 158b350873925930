from __future__ import annotations

from rest_framework import serializers

from apps.audit.models import AuditEntry


class AuditEntrySerializer(serializers.ModelSerializer):
    """An entry as org admins see it (the chain fields let them check links themselves)."""

    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "seq",
            "occurred_at",
            "event",
            "actor_type",
            "actor_id",
            "actor_label",
            "ip",
            "user_agent",
            "request_id",
            "object_type",
            "object_id",
            "object_repr",
            "changes",
            "metadata",
            "prev_hash",
            "hash",
        ]
        read_only_fields = fields

"""What the expiry warnings show: which key, when it expires; never a secret or its hash."""

from rest_framework import serializers

from apps.accounts.models import APIKey


class ExpiringKeySerializer(serializers.ModelSerializer):
    prefix = serializers.CharField(read_only=True)

    class Meta:
        model = APIKey
        fields = ["id", "name", "prefix", "scope", "expires_at", "created_at", "last_used_at"]
        read_only_fields = fields

"""Wire shapes of the orgs tag."""

from __future__ import annotations

from rest_framework import serializers

from apps.accounts.models import APIKey
from apps.accounts.serializers import (
    KeyScopeFieldsMixin,
    OrganizationSerializer,  # noqa: F401 (re-exported)
)
from apps.core.api.serializers import GoShapeMixin
from apps.orgs.models import Membership


class OrgWriteSerializer(serializers.Serializer):
    """handlers.orgCreateReq / handlers.orgUpdateReq."""

    name = serializers.CharField(max_length=255)
    domain = serializers.CharField(
        max_length=253, required=False, allow_blank=True, allow_null=True
    )

    def validate_name(self, value: str) -> str:
        if not value.strip():
            raise serializers.ValidationError("This field may not be blank.")
        return value

    def validate_domain(self, value: str | None) -> str | None:
        value = (value or "").strip().lower().rstrip(".")
        if value and ("." not in value or any(c in value for c in " /@:")):
            raise serializers.ValidationError("Enter a domain name such as acme.com.")
        return value or None


class MemberSerializer(serializers.ModelSerializer):
    """handlers.memberOut."""

    user_id = serializers.UUIDField(read_only=True)
    email = serializers.EmailField(source="user.primary_email", read_only=True)
    role = serializers.CharField(read_only=True, help_text="owner/admin/member/viewer")

    class Meta:
        model = Membership
        fields = ["user_id", "email", "role"]
        read_only_fields = fields


class MemberUpsertSerializer(serializers.Serializer):
    """handlers.memberUpsertReq."""

    user_id = serializers.UUIDField()
    # A plain string in the contract (owner/admin/member/viewer); checked here.
    role = serializers.CharField(max_length=16)

    def validate_role(self, value: str) -> str:
        if value not in Membership.Role.values:
            raise serializers.ValidationError(f"must be one of {', '.join(Membership.Role.values)}")
        return value


class OrgAPIKeySerializer(GoShapeMixin, KeyScopeFieldsMixin, serializers.ModelSerializer):
    """models.APIKey (no secret material: only the hash exists, and it is never shown). Unset
    optional fields are omitted, as the original model's `omitempty` pointers."""

    omit_if_none = ("user_id", "cluster_id", "expires_at", "last_used_at")

    org_id = serializers.UUIDField(source="organization_id", read_only=True)
    user_id = serializers.UUIDField(read_only=True)
    revoked = serializers.BooleanField(read_only=True)
    prefix = serializers.CharField(read_only=True)

    class Meta:
        model = APIKey
        fields = [
            "id",
            "org_id",
            "scope",
            "purpose",
            "cluster_id",
            "is_ephemeral",
            "name",
            "user_id",
            "expires_at",
            "revoked",
            "prefix",
            "last_used_at",
            "created_at",
            "updated_at",
            *KeyScopeFieldsMixin.SCOPE_FIELDS,
        ]
        read_only_fields = fields


class OrgKeyCreatedSerializer(serializers.Serializer):
    """handlers.orgKeyCreateResp: key and secret shown once."""

    id = serializers.UUIDField()
    name = serializers.CharField()
    scope = serializers.CharField()
    created_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField(required=False)  # omitted while unset
    org_key = serializers.CharField()
    org_secret = serializers.CharField()
    # The key's scopes, beyond the contract.
    read_only = serializers.BooleanField()  # type: ignore[assignment]  # as CreateKeySerializer
    allowed_cidrs = serializers.ListField(child=serializers.CharField())
    cluster_ids = serializers.ListField(child=serializers.UUIDField())

"""Wire shapes of the auth and me tags (autoglue-openapi.json)."""

from __future__ import annotations

from typing import cast

from rest_framework import serializers

from apps.accounts.models import APIKey, User, UserEmail
from apps.core.api.serializers import GoShapeMixin
from apps.orgs.models import Organization


class UserSerializer(serializers.ModelSerializer):
    """models.User."""

    class Meta:
        model = User
        fields = [
            "id",
            "display_name",
            "primary_email",
            "avatar_url",
            "is_disabled",
            "is_admin",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class UserEmailSerializer(serializers.ModelSerializer):
    """models.UserEmail, with the owning user nested as the contract shows it."""

    user_id = serializers.UUIDField(read_only=True)
    user = UserSerializer(read_only=True)

    class Meta:
        model = UserEmail
        fields = [
            "id",
            "user_id",
            "user",
            "email",
            "is_verified",
            "is_primary",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class OrganizationSerializer(serializers.ModelSerializer):
    """models.Organization."""

    class Meta:
        model = Organization
        fields = ["id", "name", "domain", "created_at", "updated_at"]
        read_only_fields = fields


class MeSerializer(UserSerializer):
    """handlers.meResponse: the user plus e-mails (primary first) and organizations."""

    emails = serializers.SerializerMethodField()
    organizations = serializers.SerializerMethodField()

    class Meta(UserSerializer.Meta):
        fields = [*UserSerializer.Meta.fields, "emails", "organizations"]
        read_only_fields = fields

    def get_emails(self, user: User) -> list[dict]:
        rows = list(user.emails.all())
        for row in rows:
            row.user = user  # the nested user is this one; no query per row
        # many=True makes a ListSerializer, whose data is a list (the stubs type it as a dict).
        return cast("list[dict]", UserEmailSerializer(rows, many=True).data)

    def get_organizations(self, user: User) -> list[dict]:
        orgs = Organization.objects.filter(memberships__user=user).order_by("-created_at")
        return cast("list[dict]", OrganizationSerializer(orgs, many=True).data)


class UpdateMeSerializer(serializers.Serializer):
    """handlers.updateMeRequest."""

    display_name = serializers.CharField(max_length=255, required=False, allow_blank=True)


class CreateKeySerializer(serializers.Serializer):
    """handlers.createUserKeyRequest / handlers.orgKeyCreateReq."""

    name = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    expires_in_hours = serializers.IntegerField(
        required=False, allow_null=True, min_value=0, max_value=24 * 365 * 10
    )


class UserAPIKeySerializer(GoShapeMixin, serializers.ModelSerializer):
    """handlers.userAPIKeyOut (without `plain`, which only the create response carries).
    `expires_at` and `last_used_at` are omitted while unset, as in the original."""

    omit_if_none = ("expires_at", "last_used_at")

    scope = serializers.CharField(read_only=True)

    class Meta:
        model = APIKey
        fields = ["id", "name", "scope", "created_at", "expires_at", "last_used_at"]
        read_only_fields = fields


class TokenRequestSerializer(serializers.Serializer):
    """dto.RefreshRequest / dto.LogoutRequest."""

    refresh_token = serializers.CharField(max_length=512, trim_whitespace=True)


class UserAPIKeyCreatedSerializer(UserAPIKeySerializer):
    """handlers.userAPIKeyOut as returned by create: with the key, shown once."""

    plain = serializers.CharField(read_only=True)

    class Meta(UserAPIKeySerializer.Meta):
        fields = [*UserAPIKeySerializer.Meta.fields, "plain"]
        read_only_fields = fields


class TokenPairSerializer(serializers.Serializer):
    """dto.TokenPair."""

    access_token = serializers.CharField()
    refresh_token = serializers.CharField()
    token_type = serializers.CharField()
    expires_in = serializers.IntegerField()


class AuthStartSerializer(serializers.Serializer):
    """dto.AuthStartResponse."""

    auth_url = serializers.URLField()


class JWKSerializer(serializers.Serializer):
    """dto.JWK."""

    kty = serializers.CharField()
    use = serializers.CharField()
    kid = serializers.CharField()
    alg = serializers.CharField()
    n = serializers.CharField()
    e = serializers.CharField()


class JWKSSerializer(serializers.Serializer):
    """dto.JWKS."""

    keys = JWKSerializer(many=True)

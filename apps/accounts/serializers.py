"""Wire shapes of the auth and me tags (autoglue-openapi.json)."""

from __future__ import annotations

from typing import Any, cast

from rest_framework import serializers

from apps.accounts.models import APIKey, User, UserEmail
from apps.accounts.services import MAX_SCOPE_ENTRIES, KeyScopeRequest
from apps.core.api.serializers import GoShapeMixin
from apps.core.tenancy import KeyScope
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
    # Scopes, beyond the contract (docs/identity.md, "Scoped keys"); fixed at creation.
    # The wire name shadows Field.read_only in the stubs; DRF's metaclass moves declared fields
    # off the class, so the attribute Field uses is untouched.
    read_only = serializers.BooleanField(  # type: ignore[assignment]
        required=False, default=False, help_text="The key may only read (GET/HEAD/OPTIONS)."
    )
    allowed_cidrs = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        default=list,
        max_length=MAX_SCOPE_ENTRIES,
        help_text="Client networks the key may be used from (CIDR); empty: any.",
    )
    cluster_ids = serializers.ListField(
        child=serializers.UUIDField(),
        required=False,
        default=list,
        max_length=MAX_SCOPE_ENTRIES,
        help_text="Clusters the key may touch; empty: not limited to clusters.",
    )

    def create_kwargs(self, *, creator: KeyScope | None) -> dict[str, Any]:
        """The key-creation service's arguments from the validated body."""
        data = self.validated_data
        return {
            "name": data["name"],
            "expires_in_hours": data.get("expires_in_hours"),
            "scope": KeyScopeRequest(
                read_only=data["read_only"],
                allowed_cidrs=tuple(data["allowed_cidrs"]),
                cluster_ids=tuple(data["cluster_ids"]),
                creator=creator,
            ),
        }


class KeyScopeFieldsMixin(serializers.Serializer):
    """A key's scopes in list and create responses (beyond the contract). `read_only` comes
    from the model through ModelSerializer."""

    allowed_cidrs = serializers.ListField(child=serializers.CharField(), read_only=True)
    cluster_ids = serializers.ListField(
        child=serializers.UUIDField(), source="allowed_cluster_ids", read_only=True
    )

    SCOPE_FIELDS = ("read_only", "allowed_cidrs", "cluster_ids")


class UserAPIKeySerializer(GoShapeMixin, KeyScopeFieldsMixin, serializers.ModelSerializer):
    """handlers.userAPIKeyOut (without `plain`, which only the create response carries), plus
    the key's scopes. `expires_at` and `last_used_at` are omitted while unset, as in the
    original."""

    omit_if_none = ("expires_at", "last_used_at")

    scope = serializers.CharField(read_only=True)

    class Meta:
        model = APIKey
        fields = [
            "id",
            "name",
            "scope",
            "created_at",
            "expires_at",
            "last_used_at",
            *KeyScopeFieldsMixin.SCOPE_FIELDS,
        ]
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

"""Request and response shapes of the infrastructure routes (the contract's dto.* schemas).

Private keys and credential secrets are write-only here: no response serializer has a field for
them except the explicit reveal shapes.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.core.api.errors import bad_request
from apps.core.api.fields import OrgScopedPrimaryKeyRelatedField
from apps.core.api.serializers import FastReadMixin, GoShapeMixin
from apps.core.validators import (
    validate_hostname,
    validate_name,
    validate_ssh_user,
    validate_target_ip,
)
from apps.infrastructure.models import Credential, LoadBalancer, Server, SSHKey


class LowercaseChoiceField(serializers.ChoiceField):
    """A choice compared case-insensitively and stored lowercase (`Bastion` -> `bastion`)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, str):
            data = data.strip().lower()
        return super().to_internal_value(data)


# --- SSH keys --------------------------------------------------------------------------------


class SSHKeySerializer(FastReadMixin, serializers.ModelSerializer):
    """dto.SshResponse, plus `server_count` when the queryset is annotated with it."""

    organization_id = serializers.UUIDField(read_only=True)
    server_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = SSHKey
        fields = [
            "id",
            "organization_id",
            "name",
            "public_key",
            "fingerprint",
            "server_count",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def to_representation(self, instance: SSHKey) -> dict:
        data = super().to_representation(instance)
        if not hasattr(instance, "server_count"):
            data.pop("server_count", None)
        return data


class SSHKeyRevealSerializer(SSHKeySerializer):
    """dto.SshRevealResponse: the list-item shape plus the decrypted private key."""

    private_key = serializers.CharField(read_only=True)

    class Meta(SSHKeySerializer.Meta):
        fields = [f for f in SSHKeySerializer.Meta.fields if f != "server_count"] + ["private_key"]
        read_only_fields = fields

    def to_representation(self, instance: SSHKey) -> dict:
        data = super().to_representation(instance)
        data.pop("server_count", None)
        return data


class SSHKeyCreateSerializer(serializers.Serializer):
    """dto.CreateSSHRequest. `type` and `bits` are checked by the service (contract codes)."""

    name = serializers.CharField(max_length=255, validators=[validate_name])
    comment = serializers.CharField(
        max_length=255,
        required=False,
        allow_blank=True,
        default="",
        # One line: it ends up on the OpenSSH public key, where a newline would smuggle in a
        # second authorized_keys entry.
        validators=[validate_name],
    )
    type = serializers.CharField(required=False, allow_blank=True, allow_null=True, default=None)
    bits = serializers.JSONField(required=False, allow_null=True, default=None)


# --- Servers ---------------------------------------------------------------------------------


class ServerSerializer(GoShapeMixin, FastReadMixin, serializers.ModelSerializer):
    """dto.ServerResponse for reads, dto.CreateServerRequest / UpdateServerRequest for writes.
    The pinned host key is internal and never part of the response. Without a public address
    the field is omitted, as the original's `*string` with `omitempty`."""

    omit_if_none = ("public_ip_address",)

    organization_id = serializers.UUIDField(read_only=True)
    ssh_key_id = OrgScopedPrimaryKeyRelatedField(
        source="ssh_key", queryset=SSHKey.objects.all(), not_found_code="ssh_key_not_found"
    )
    role = LowercaseChoiceField(choices=Server.Role.choices)
    status = LowercaseChoiceField(choices=Server.Status.choices, required=False)
    # Everything below up to ssh_port reaches an SSH connection (apps.core.validators).
    hostname = serializers.CharField(
        max_length=253, required=False, allow_blank=True, validators=[validate_hostname]
    )
    public_ip_address = serializers.IPAddressField(
        required=False, allow_null=True, allow_blank=True
    )
    private_ip_address = serializers.IPAddressField(validators=[validate_target_ip])
    ssh_user = serializers.CharField(max_length=64, validators=[validate_ssh_user])
    # Beyond the contract (docs/inventory.md): sshd does not always listen on 22.
    ssh_port = serializers.IntegerField(min_value=1, max_value=65535, required=False)

    class Meta:
        model = Server
        fields = [
            "id",
            "organization_id",
            "hostname",
            "public_ip_address",
            "private_ip_address",
            "ssh_user",
            "ssh_port",
            "ssh_key_id",
            "role",
            "status",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "organization_id", "created_at", "updated_at"]

    def validate_public_ip_address(self, value: str | None) -> str | None:
        # An empty string means "no public address", stored as null.
        if value:
            validate_target_ip(value)
        return value or None

    def to_representation(self, instance: Server) -> dict:
        data = super().to_representation(instance)
        data["ssh_key_id"] = str(instance.ssh_key_id)
        return data


# --- Credentials -----------------------------------------------------------------------------


class CredentialSerializer(FastReadMixin, serializers.ModelSerializer):
    """dto.CredentialOut. Never carries the secret."""

    credential_provider = serializers.CharField(source="provider", read_only=True)

    class Meta:
        model = Credential
        fields = [
            "id",
            "credential_provider",
            "kind",
            "schema_version",
            "name",
            "scope_kind",
            "scope_version",
            "scope",
            "account_id",
            "region",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class CredentialCreateSerializer(serializers.Serializer):
    """dto.CreateCredentialRequest; `secret` and `scope` are checked by the registry."""

    credential_provider = serializers.CharField(max_length=50)
    kind = serializers.CharField(max_length=50)
    schema_version = serializers.IntegerField(min_value=1)
    name = serializers.CharField(
        max_length=100, required=False, allow_blank=True, default="", validators=[validate_name]
    )
    scope_kind = serializers.CharField(max_length=20)
    scope_version = serializers.IntegerField(min_value=1)
    scope = serializers.JSONField()
    account_id = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    region = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    secret = serializers.JSONField()


class CredentialUpdateSerializer(serializers.Serializer):
    """dto.UpdateCredentialRequest: every field optional; `secret` rotates."""

    name = serializers.CharField(
        max_length=100, required=False, allow_blank=True, validators=[validate_name]
    )
    account_id = serializers.CharField(max_length=32, required=False, allow_blank=True)
    region = serializers.CharField(max_length=32, required=False, allow_blank=True)
    scope_kind = serializers.CharField(max_length=20, required=False)
    scope_version = serializers.IntegerField(min_value=1, required=False)
    scope = serializers.JSONField(required=False)
    secret = serializers.JSONField(required=False)


# --- Load balancers --------------------------------------------------------------------------


class LoadBalancerSerializer(GoShapeMixin, FastReadMixin, serializers.ModelSerializer):
    """dto.LoadBalancerResponse / Create / UpdateLoadBalancerRequest. `kind` is case-insensitive
    and stored lowercase; anything else is 400 `bad_kind`. Unset addresses render as "" (the
    original's plain `string`)."""

    empty_if_none = ("public_ip_address", "private_ip_address")

    organization_id = serializers.UUIDField(read_only=True)
    kind = serializers.CharField()
    public_ip_address = serializers.IPAddressField(
        required=False, allow_null=True, allow_blank=True
    )
    private_ip_address = serializers.IPAddressField(
        required=False, allow_null=True, allow_blank=True
    )

    class Meta:
        model = LoadBalancer
        fields = [
            "id",
            "organization_id",
            "name",
            "kind",
            "public_ip_address",
            "private_ip_address",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "organization_id", "created_at", "updated_at"]

    def validate_kind(self, value: str) -> str:
        kind = value.strip().lower()
        if kind not in LoadBalancer.Kind.values:
            raise bad_request("bad_kind", "kind: must be glueops or public")
        return kind

    def validate_public_ip_address(self, value: str | None) -> str | None:
        return value or None

    def validate_private_ip_address(self, value: str | None) -> str | None:
        return value or None

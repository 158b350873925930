"""Group sync's API shapes (beyond the contract). The service-account key is write-only: no
response carries it, only whether one is stored and which account it is."""

from __future__ import annotations

from rest_framework import serializers

from apps.groupsync.models import GroupRoleMapping, GroupSyncSettings
from apps.orgs.models import Membership


class GroupSyncSettingsSerializer(serializers.ModelSerializer):
    """The organization's Workspace group settings as read."""

    organization_id = serializers.UUIDField(read_only=True)
    service_account_key_set = serializers.SerializerMethodField()

    class Meta:
        model = GroupSyncSettings
        fields = [
            "organization_id",
            "enabled",
            "mode",
            "service_account_email",
            "service_account_key_set",
            "delegated_subject",
            "last_sync_at",
            "last_sync_status",
            "last_sync_error",
        ]
        read_only_fields = fields

    def get_service_account_key_set(self, obj: GroupSyncSettings) -> bool:
        return bool(obj.service_account_key)


class GroupSyncSettingsUpdateSerializer(serializers.Serializer):
    """PATCH /group-sync: every field optional. `service_account_key` is the JSON key file's
    text ("" removes it); it is checked to be a service-account key before it is stored."""

    enabled = serializers.BooleanField(required=False)
    mode = serializers.ChoiceField(choices=GroupSyncSettings.Mode.choices, required=False)
    service_account_key = serializers.CharField(
        required=False, allow_blank=True, max_length=20000, trim_whitespace=False
    )
    delegated_subject = serializers.EmailField(required=False, allow_blank=True)


class GroupRoleMappingSerializer(serializers.ModelSerializer):
    """A Google group (its e-mail address) and the role its members hold at least."""

    class Meta:
        model = GroupRoleMapping
        fields = ["id", "group_email", "role", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


_CONFIRM_HELP = (
    "Required (true) to map a group to owner or admin: whoever can join the group gets the role."
)


class GroupRoleMappingCreateSerializer(serializers.Serializer):
    group_email = serializers.EmailField(max_length=254)
    role = serializers.ChoiceField(choices=Membership.Role.choices)
    confirm_privileged = serializers.BooleanField(
        required=False, default=False, help_text=_CONFIRM_HELP
    )


class GroupRoleMappingUpdateSerializer(serializers.Serializer):
    group_email = serializers.EmailField(max_length=254, required=False)
    role = serializers.ChoiceField(choices=Membership.Role.choices, required=False)
    confirm_privileged = serializers.BooleanField(required=False, help_text=_CONFIRM_HELP)

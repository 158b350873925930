"""Console pages for Workspace groups: the settings and the group → role mappings. Owners only
(as on the API), saved through the same services; the service-account key is typed into a
password field, stored encrypted, and shown only as set / not set."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from apps.core.permissions import Perm
from apps.groupsync import services
from apps.groupsync.models import GroupRoleMapping, GroupSyncSettings
from apps.groupsync.serializers import (
    GroupRoleMappingCreateSerializer,
    GroupRoleMappingUpdateSerializer,
    GroupSyncSettingsUpdateSerializer,
)
from apps.orgs.console_base import (
    ORG_FILTER,
    APIRules,
    ConsoleModelForm,
    OrgScopedAdmin,
    adopt,
    secret_state,
)


class _OwnersOnly(OrgScopedAdmin):
    view_perm = Perm.MANAGE_GROUP_SYNC
    add_perm = Perm.MANAGE_GROUP_SYNC
    change_perm = Perm.MANAGE_GROUP_SYNC
    delete_perm = Perm.MANAGE_GROUP_SYNC


class GroupSyncSettingsForm(ConsoleModelForm):
    """The key is never rendered back; leaving it empty keeps the stored one."""

    service_account_key = forms.CharField(
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="The service account's JSON key file. Leave empty to keep the stored key.",
    )

    class Meta:
        model = GroupSyncSettings
        fields = ["organization", "enabled", "mode", "delegated_subject"]


@admin.register(GroupSyncSettings)
class GroupSyncSettingsAdmin(_OwnersOnly):
    """How the organization's Google groups are read (docs/identity.md, "Workspace groups")."""

    form = GroupSyncSettingsForm
    list_display = ("__str__", "organization", "enabled", "mode", "last_sync_status")
    list_filter = ("enabled", "mode", ORG_FILTER)
    search_fields = ("organization__name", "delegated_subject")
    list_select_related = ("organization",)
    fields = (
        "organization",
        "enabled",
        "mode",
        "service_account_key",
        "key_state",
        "service_account_email",
        "delegated_subject",
        "last_sync_at",
        "last_sync_status",
        "last_sync_error",
    )
    readonly_fields = (
        "key_state",
        "service_account_email",
        "last_sync_at",
        "last_sync_status",
        "last_sync_error",
    )
    api_rules = APIRules(create=GroupSyncSettingsUpdateSerializer)

    @admin.display(description="stored key")
    def key_state(self, obj: GroupSyncSettings) -> str:
        return secret_state(obj.service_account_key)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # turn sync off instead; the row holds the key's history in the audit log

    def save_model(
        self, request: HttpRequest, obj: GroupSyncSettings, form: Any, change: bool
    ) -> None:
        data = form.cleaned_data
        changes = {name: data[name] for name in ("enabled", "mode", "delegated_subject")}
        if data.get("service_account_key"):
            changes["service_account_key"] = data["service_account_key"]
        saved = services.group_sync_settings_update(
            organization_id=obj.organization_id, changes=changes
        )
        adopt(obj, saved)


class GroupRoleMappingForm(ConsoleModelForm):
    confirm_privileged = forms.BooleanField(
        required=False,
        label="Only administrators manage this group's members",
        help_text="Required for owner and admin: whoever can join the group gets the role.",
    )

    class Meta:
        model = GroupRoleMapping
        fields = ["organization", "group_email", "role"]


@admin.register(GroupRoleMapping)
class GroupRoleMappingAdmin(_OwnersOnly):
    """Which Google group grants which role."""

    form = GroupRoleMappingForm
    list_display = ("group_email", "role", "organization", "updated_at")
    list_filter = ("role", ORG_FILTER)
    search_fields = ("group_email",)
    list_select_related = ("organization",)
    fields = ("organization", "group_email", "role", "confirm_privileged")
    api_rules = APIRules(
        create=GroupRoleMappingCreateSerializer, update=GroupRoleMappingUpdateSerializer
    )

    def save_model(
        self, request: HttpRequest, obj: GroupRoleMapping, form: Any, change: bool
    ) -> None:
        data = form.cleaned_data
        if change:
            names = ("group_email", "role", "confirm_privileged")
            saved = services.group_mapping_update(mapping=obj, changes={n: data[n] for n in names})
        else:
            saved = services.group_mapping_create(
                organization_id=data["organization"].pk,
                group_email=data["group_email"],
                role=data["role"],
                confirm_privileged=data["confirm_privileged"],
            )
        adopt(obj, saved)

    def delete_model(self, request: HttpRequest, obj: GroupRoleMapping) -> None:
        services.group_mapping_delete(mapping=obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for mapping in queryset:
            services.group_mapping_delete(mapping=mapping)

"""Group sync routes (beyond the contract, docs/identity.md "Workspace groups"): the settings
(`/group-sync`) and the group → role mappings (`/group-mappings`). Owners only: a mapping can
make anyone an owner. Views parse and answer; services decide."""

from __future__ import annotations

from typing import Any, ClassVar

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api.viewsets import OrgScopedModelViewSet, OrgScopedViewSet
from apps.core.permissions import Perm
from apps.groupsync import services
from apps.groupsync.models import GroupRoleMapping, GroupSyncSettings
from apps.groupsync.serializers import (
    GroupRoleMappingCreateSerializer,
    GroupRoleMappingSerializer,
    GroupRoleMappingUpdateSerializer,
    GroupSyncSettingsSerializer,
    GroupSyncSettingsUpdateSerializer,
)

_ACTIONS = ("show", "change", "list", "retrieve", "create", "partial_update", "destroy")
_OWNERS: dict[str, Perm] = dict.fromkeys(_ACTIONS, Perm.MANAGE_GROUP_SYNC)


class GroupSyncSettingsViewSet(OrgScopedViewSet):
    """/group-sync: how the organization's Google groups are read, and the sync mode."""

    queryset = GroupSyncSettings.objects.all()
    serializer_class = GroupSyncSettingsSerializer
    required_permissions: ClassVar[dict[str, Perm]] = _OWNERS

    @extend_schema(operation_id="GetGroupSyncSettings", responses=GroupSyncSettingsSerializer)
    def show(self, request: Request) -> Response:
        found = services.group_sync_settings_get(organization_id=self.organization.pk)
        return Response(GroupSyncSettingsSerializer(found).data)

    @extend_schema(
        operation_id="UpdateGroupSyncSettings",
        request=GroupSyncSettingsUpdateSerializer,
        responses=GroupSyncSettingsSerializer,
    )
    def change(self, request: Request) -> Response:
        payload = GroupSyncSettingsUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        found = services.group_sync_settings_update(
            organization_id=self.organization.pk, changes=dict(payload.validated_data)
        )
        return Response(GroupSyncSettingsSerializer(found).data)


@extend_schema_view(
    list=extend_schema(operation_id="ListGroupMappings"),
    retrieve=extend_schema(operation_id="GetGroupMapping"),
    destroy=extend_schema(operation_id="DeleteGroupMapping"),
)
class GroupRoleMappingViewSet(OrgScopedModelViewSet):
    """/group-mappings: which Google group grants which role."""

    queryset = GroupRoleMapping.objects.order_by("group_email")
    serializer_class = GroupRoleMappingSerializer
    required_permissions: ClassVar[dict[str, Perm]] = _OWNERS

    @extend_schema(
        operation_id="CreateGroupMapping",
        request=GroupRoleMappingCreateSerializer,
        responses={201: GroupRoleMappingSerializer},
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        payload = GroupRoleMappingCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        mapping = services.group_mapping_create(
            organization_id=self.organization.pk, **payload.validated_data
        )
        return Response(GroupRoleMappingSerializer(mapping).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="UpdateGroupMapping",
        request=GroupRoleMappingUpdateSerializer,
        responses=GroupRoleMappingSerializer,
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        mapping = self.get_object()
        payload = GroupRoleMappingUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        mapping = services.group_mapping_update(
            mapping=mapping, changes=dict(payload.validated_data)
        )
        return Response(GroupRoleMappingSerializer(mapping).data)

    def perform_destroy(self, instance: GroupRoleMapping) -> None:
        services.group_mapping_delete(mapping=instance)

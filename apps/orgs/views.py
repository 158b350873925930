"""Views of the orgs tag: organizations, members and org API keys. Thin: services do the work."""

from __future__ import annotations

from typing import ClassVar

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts import services as account_services
from apps.accounts.models import APIKey
from apps.accounts.permissions import IsUserPrincipal
from apps.accounts.serializers import CreateKeySerializer, OrganizationSerializer
from apps.core.api.errors import not_found
from apps.core.api.pagination import list_response
from apps.core.api.transactions import AtomicWritesMixin
from apps.core.permissions import Perm
from apps.core.tenancy import parse_uuid, request_key_scope
from apps.orgs import services
from apps.orgs.models import Membership, Organization
from apps.orgs.permissions import HasOrgPathPermission, OrgAccess
from apps.orgs.serializers import (
    MemberSerializer,
    MemberUpsertSerializer,
    OrgAPIKeySerializer,
    OrgKeyCreatedSerializer,
    OrgWriteSerializer,
)

_ORG = [OpenApiParameter("org_id", OpenApiTypes.UUID, OpenApiParameter.PATH)]


class OrgsView(AtomicWritesMixin, APIView):
    """GET/POST /orgs: the caller's organizations; create one (caller becomes owner)."""

    permission_classes = [IsUserPrincipal]
    scoped_key_permissions: ClassVar[dict[str, Perm]] = {"POST": Perm.MANAGE_ORG}

    @extend_schema(
        tags=["Orgs"], operation_id="listMyOrgs", responses=OrganizationSerializer(many=True)
    )
    def get(self, request):
        orgs = Organization.objects.filter(memberships__user=request.user).order_by("-created_at")
        return list_response(request, orgs, OrganizationSerializer, self)

    @extend_schema(
        tags=["Orgs"],
        operation_id="createOrg",
        request=OrgWriteSerializer,
        responses={201: OrganizationSerializer},
    )
    def post(self, request):
        serializer = OrgWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        org = services.organization_create(creator=request.user, **serializer.validated_data)
        return Response(OrganizationSerializer(org).data, status=status.HTTP_201_CREATED)


class OrgPathView(AtomicWritesMixin, APIView):
    """Base of /orgs/{id}/...: `self.access` is the resolved organization and role."""

    permission_classes = [HasOrgPathPermission]
    required_permissions: ClassVar[dict[str, Perm]] = {}
    org_access: OrgAccess

    @property
    def org(self) -> Organization:
        return self.org_access.organization


class OrgDetailView(OrgPathView):
    required_permissions: ClassVar = {
        "GET": Perm.READ,
        "PATCH": Perm.MANAGE_ORG,
        "DELETE": Perm.DELETE_ORG,
    }

    @extend_schema(
        tags=["Orgs"], operation_id="getOrg", responses=OrganizationSerializer, parameters=_ORG
    )
    def get(self, request, org_id):
        return Response(OrganizationSerializer(self.org).data)

    @extend_schema(
        tags=["Orgs"],
        operation_id="updateOrg",
        request=OrgWriteSerializer,
        responses=OrganizationSerializer,
        parameters=_ORG,
    )
    def patch(self, request, org_id):
        serializer = OrgWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        org = services.organization_update(
            organization=self.org,
            name=data.get("name"),
            domain=data.get("domain"),
            domain_given="domain" in data,
        )
        return Response(OrganizationSerializer(org).data)

    @extend_schema(tags=["Orgs"], operation_id="deleteOrg", responses={204: None}, parameters=_ORG)
    def delete(self, request, org_id):
        services.organization_delete(organization=self.org)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MembersView(OrgPathView):
    required_permissions: ClassVar = {"GET": Perm.READ_MEMBERS, "POST": Perm.MANAGE_MEMBERS}

    @extend_schema(
        tags=["Orgs"],
        operation_id="listMembers",
        responses=MemberSerializer(many=True),
        parameters=_ORG,
    )
    def get(self, request, org_id):
        rows = Membership.objects.select_related("user").filter(organization=self.org)
        return list_response(request, rows, MemberSerializer, self)

    @extend_schema(
        tags=["Orgs"],
        operation_id="addOrUpdateMember",
        request=MemberUpsertSerializer,
        responses=MemberSerializer,
        parameters=_ORG,
    )
    def post(self, request, org_id):
        serializer = MemberUpsertSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.membership_upsert(
            organization=self.org, acting_role=self.org_access.role, **serializer.validated_data
        )
        membership = Membership.objects.select_related("user").get(pk=membership.pk)
        return Response(MemberSerializer(membership).data)


class MemberView(OrgPathView):
    required_permissions: ClassVar = {"DELETE": Perm.MANAGE_MEMBERS}

    @extend_schema(
        tags=["Orgs"],
        operation_id="removeMember",
        responses={204: None},
        parameters=[*_ORG, OpenApiParameter("user_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
    )
    def delete(self, request, org_id, user_id):
        services.membership_remove(
            organization=self.org,
            user_id=parse_uuid(user_id, code="invalid_user_id"),
            acting_role=self.org_access.role,
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class OrgAPIKeysView(OrgPathView):
    required_permissions: ClassVar = {"GET": Perm.READ_KEYS, "POST": Perm.MANAGE_KEYS}

    @extend_schema(
        tags=["Orgs"],
        operation_id="listOrgKeys",
        responses=OrgAPIKeySerializer(many=True),
        parameters=_ORG,
    )
    def get(self, request, org_id):
        # Ephemeral cluster automation keys are internal plumbing, not listed (the original
        # returned raw rows including them).
        keys = APIKey.objects.filter(
            organization=self.org,
            scope=APIKey.Scope.ORG,
            is_ephemeral=False,
            revoked_at__isnull=True,
        ).order_by("-created_at")
        return list_response(request, keys, OrgAPIKeySerializer, self)

    @extend_schema(
        tags=["Orgs"],
        operation_id="createOrgKey",
        request=CreateKeySerializer,
        responses={201: OrgKeyCreatedSerializer},
        parameters=_ORG,
    )
    def post(self, request, org_id):
        serializer = CreateKeySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = account_services.api_key_create_for_org(
            organization=self.org,
            **serializer.create_kwargs(creator=request_key_scope(request)),
        )
        key = created.key
        body = {
            "id": str(key.pk),
            "name": key.name,
            "scope": "org",
            "created_at": key.created_at,
            "org_key": created.plain,
            "org_secret": created.secret,
            "read_only": key.read_only,
            "allowed_cidrs": key.allowed_cidrs,
            "cluster_ids": key.allowed_cluster_ids,
        }
        if key.expires_at is not None:  # omitted while unset, as in the original
            body["expires_at"] = key.expires_at
        response = Response(body, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response


class OrgAPIKeyView(OrgPathView):
    required_permissions: ClassVar = {"DELETE": Perm.MANAGE_KEYS}

    @extend_schema(
        tags=["Orgs"],
        operation_id="deleteOrgKey",
        responses={204: None},
        parameters=[*_ORG, OpenApiParameter("key_id", OpenApiTypes.UUID, OpenApiParameter.PATH)],
    )
    def delete(self, request, org_id, key_id):
        pk = parse_uuid(key_id, code="invalid_key_id", what="key_id")
        key = APIKey.objects.filter(
            pk=pk, organization=self.org, scope=APIKey.Scope.ORG, revoked_at__isnull=True
        ).first()
        if key is None:
            raise not_found("not_found", "api key not found")
        account_services.api_key_revoke(key=key)
        return Response(status=status.HTTP_204_NO_CONTENT)

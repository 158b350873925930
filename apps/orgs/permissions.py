"""Access to /orgs/{id}/...: the organization comes from the path, the role from the one role
table (apps.core.permissions.ROLE_PERMISSIONS)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rest_framework.permissions import BasePermission

from apps.core.api.errors import APIError, forbidden, not_found
from apps.core.permissions import Perm, key_scope_check, key_scope_perm_check, request_allows
from apps.core.tenancy import MACHINE_ROLE, OrgKeyPrincipal, parse_uuid
from apps.orgs.models import Membership, Organization


@dataclass(frozen=True)
class OrgAccess:
    organization: Organization
    role: str
    is_machine: bool


class HasOrgPathPermission(BasePermission):
    """A member of the organization in the path (with a role allowing the method's permission
    from `view.required_permissions`), or that organization's own key. Anyone else gets 404:
    another organization's existence does not leak."""

    def has_permission(self, request: Any, view: Any) -> bool:
        user = getattr(request, "user", None)
        if user is None or not getattr(user, "is_authenticated", False):
            raise APIError(401, "unauthorized", "authentication required")
        if request.method not in view.allowed_methods:
            # A method the route lacks is the dispatch's 405, whatever the id in the path.
            return True
        org_id = parse_uuid(view.kwargs["org_id"], code="invalid_id", what="id")
        auth = getattr(request, "auth", None)
        if isinstance(auth, OrgKeyPrincipal):
            org = (
                Organization.objects.filter(pk=org_id).first()
                if auth.organization_id == org_id
                else None
            )
            role = MACHINE_ROLE
        else:
            membership = (
                Membership.objects.select_related("organization")
                .filter(organization_id=org_id, user_id=user.pk)
                .first()
            )
            org = membership.organization if membership else None
            role = membership.role if membership else ""
        if org is None:
            raise not_found("not_found", "organization not found")
        # HEAD is a GET without the body: it needs what GET needs, never WRITE.
        method = "GET" if request.method == "HEAD" else request.method
        perm: Perm = view.required_permissions.get(method, Perm.WRITE)
        if not request_allows(request, role, perm):
            raise forbidden("forbidden", "your role in this organization does not allow this")
        key_scope_perm_check(request, perm)
        key_scope_check(request, view)
        view.org_access = OrgAccess(organization=org, role=role, is_machine=role == MACHINE_ROLE)
        return True

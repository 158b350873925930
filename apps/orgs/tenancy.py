"""The organizations app's half of the tenancy layer: finding a request's organization and
role from its principal, `X-Org-ID` and the memberships. Registered with `apps.core.tenancy`
when the app starts, so core never imports this app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from apps.core.api.errors import APIError, forbidden
from apps.core.tenancy import MACHINE_ROLE, ORG_HEADER, OrgKeyPrincipal, Tenant, parse_uuid
from apps.orgs.models import Membership, Organization

if TYPE_CHECKING:
    from rest_framework.request import Request


def tenant_resolve(request: Request) -> Tenant:
    """Which organization a request acts in, and as which role (the rules are in the
    module docstring of `apps.core.tenancy`)."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, OrgKeyPrincipal):
        try:
            org = Organization.objects.get(pk=auth.organization_id)
        except Organization.DoesNotExist:
            raise APIError(401, "unauthorized", "invalid org credentials") from None
        return Tenant(organization=org, role=MACHINE_ROLE, principal_kind="org_key")

    user = request.user
    if user is None or not getattr(user, "is_authenticated", False) or not user.pk:
        raise APIError(401, "unauthorized", "authentication required")

    memberships = Membership.objects.select_related("organization").filter(user_id=user.pk)
    header = request.headers.get(ORG_HEADER, "").strip()
    if header:
        org_id = parse_uuid(header, code="invalid_org_id", what=ORG_HEADER)
        membership = memberships.filter(organization_id=org_id).first()
        if membership is None:
            raise forbidden("org_forbidden", "you are not a member of this organization")
    else:
        only = list(memberships[:2])
        if len(only) != 1:
            raise forbidden("org_required", f"send {ORG_HEADER} to choose an organization")
        membership = only[0]
    return Tenant(organization=membership.organization, role=membership.role, principal_kind="user")

"""The organizations app's half of the tenancy layer: finding a request's organization and
role from its principal, `X-Org-ID` and the memberships. Registered with `apps.core.tenancy`
when the app starts, so core never imports this app."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from apps.accounts.apikeys import api_key_still_valid
from apps.accounts.models import User
from apps.core.api.errors import APIError, forbidden
from apps.core.permissions import Perm, role_allows
from apps.core.tenancy import (
    MACHINE_ROLE,
    ORG_HEADER,
    OrgKeyPrincipal,
    Tenant,
    get_tenant,
    parse_uuid,
)
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


def principal_still_allowed(
    *,
    organization_id: uuid.UUID | None,
    perm: Perm,
    user_id: Any = None,
    key_id: Any = None,
    expires_at: float | None = None,
    platform_admin: bool = False,
) -> bool:
    """Whether a principal authorised earlier still holds `perm` in the organization: its
    credential is still valid (an API key not revoked or expired, a token not expired, the user
    not disabled) and its role there still allows it (an org key's role is fixed). With
    `platform_admin` (the console), a platform admin is allowed in every organization. For a
    response that outlives its request (a live log stream checks again while it runs)."""
    if expires_at is not None and time.time() >= expires_at:
        return False
    if key_id is not None and not api_key_still_valid(key_id):
        return False
    if user_id is None:  # an org key, valid for its own organization only
        return key_id is not None and role_allows(MACHINE_ROLE, perm)
    user = User.objects.filter(pk=user_id).only("is_disabled", "is_admin").first()
    if user is None or user.is_disabled:
        return False
    if platform_admin and user.is_superuser:
        return True
    if organization_id is None:
        return False
    role = (
        Membership.objects.filter(user_id=user_id, organization_id=organization_id)
        .values_list("role", flat=True)
        .first()
    )
    return role is not None and role_allows(role, perm)


def tenant_recheck(request: Request, perm: Perm) -> Callable[[], bool]:
    """`principal_still_allowed` for this API request's principal, credential and organization,
    to call later. It keeps only ids (no request, no connection)."""
    tenant = get_tenant(request)
    auth = getattr(request, "auth", None)
    organization_id = tenant.organization.pk
    key_id: Any
    if isinstance(auth, OrgKeyPrincipal):
        user_id, key_id, expires_at = None, auth.key_id, None
    else:
        claims: dict[str, Any] = auth if isinstance(auth, dict) else {}
        user_id = request.user.pk
        # A user API key's verified entry names its key; a JWT's claims carry its expiry.
        key_id = claims.get("key_id") if "sub" not in claims else None
        exp = claims.get("exp") if "sub" in claims else None
        expires_at = float(exp) if isinstance(exp, int | float) else None

    def check() -> bool:
        return principal_still_allowed(
            organization_id=organization_id,
            perm=perm,
            user_id=user_id,
            key_id=key_id,
            expires_at=expires_at,
        )

    return check

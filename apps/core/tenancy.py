"""The tenancy layer: which organization a request acts in, and as which role. Resolved once.

Principals:
- an org key/secret pair: `request.auth` is an `OrgKeyPrincipal`; its organization is fixed and
  any `X-Org-ID` header is ignored; its role is `MACHINE_ROLE`.
- a user (JWT, user API key, cookie): the organization comes from `X-Org-ID`, or, without the
  header, from the user's only membership. A malformed header is 400 `invalid_org_id`; an org
  the user is not a member of (or that does not exist) is 403 `org_forbidden`; no header and
  zero or several memberships is 403 `org_required`. (The original answered 401 for these.)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from apps.core.api.errors import APIError, bad_request, forbidden

if TYPE_CHECKING:
    from rest_framework.request import Request

    from apps.orgs.models import Organization

MACHINE_ROLE = "machine"
ORG_HEADER = "X-Org-ID"


@dataclass(frozen=True)
class OrgKeyPrincipal:
    """`request.auth` for a request authenticated with an org key/secret pair."""

    organization_id: uuid.UUID
    key_id: uuid.UUID


class MachineUser:
    """`request.user` for an org key principal: authenticated, but no person and no admin."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_admin = False
    is_disabled = False
    pk = None
    id = None

    def __init__(self, principal: OrgKeyPrincipal) -> None:
        self.principal = principal

    def __str__(self) -> str:
        return f"org-key:{self.principal.key_id}"


@dataclass(frozen=True)
class Tenant:
    organization: Organization
    role: str
    # "user" or "org_key": who is acting, for audit rows and routes that need a person.
    principal_kind: str

    @property
    def is_machine(self) -> bool:
        return self.principal_kind == "org_key"


def parse_uuid(value: str, *, code: str = "invalid_id", what: str = "id") -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        raise bad_request(code, f"{what} must be a UUID") from None


def _resolve(request: Request) -> Tenant:
    from apps.orgs.models import Membership, Organization

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


def get_tenant(request: Request) -> Tenant:
    """The request's tenant, resolved on first use and kept on the request."""
    tenant = getattr(request, "_tenant", None)
    if tenant is None:
        tenant = _resolve(request)
        request._tenant = tenant  # type: ignore[attr-defined]
    return tenant

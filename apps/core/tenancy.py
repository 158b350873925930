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
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured

from apps.core.api.errors import bad_request

if TYPE_CHECKING:
    from rest_framework.request import Request

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
    # An `apps.orgs.models.Organization` (typed loosely: core imports no app).
    organization: Any
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


# How a request's organization and role are found: the organizations app registers it when it
# starts (apps/orgs/tenancy.py), so this layer, which every app stands on, imports no app.
_resolver: Callable[[Request], Tenant] | None = None


def register_resolver(resolver: Callable[[Request], Tenant]) -> None:
    """Install the function that resolves a request's tenant (called by the orgs app)."""
    global _resolver
    _resolver = resolver


def resolved_tenant(request: Request) -> Tenant | None:
    """The tenant this request has already been resolved to (by the permission checks), or None
    on a route that has none (`/me`, platform routes). Never resolves one itself."""
    return getattr(request, "_tenant", None)


def get_tenant(request: Request) -> Tenant:
    """The request's tenant, resolved on first use and kept on the request."""
    tenant = getattr(request, "_tenant", None)
    if tenant is None:
        if _resolver is None:
            raise ImproperlyConfigured("no tenant resolver: is apps.orgs installed?")
        tenant = _resolver(request)
        request._tenant = tenant  # type: ignore[attr-defined]
    return tenant

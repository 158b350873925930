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

import ipaddress
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured

from apps.core.api.errors import bad_request
from apps.core.validators import unmapped_ip

if TYPE_CHECKING:
    from rest_framework.request import Request

MACHINE_ROLE = "machine"
ORG_HEADER = "X-Org-ID"


@dataclass(frozen=True)
class KeyScope:
    """What a scoped API key is limited to (docs/identity.md, "Scoped keys"). Fixed when the key
    is made; a key without scopes has none (`None` wherever a scope is expected)."""

    read_only: bool = False
    # Client networks the key may be used from; empty: any.
    cidrs: tuple[str, ...] = ()
    # Clusters the key may touch; None: not limited to clusters.
    cluster_ids: frozenset[uuid.UUID] | None = None

    @property
    def limited_to_clusters(self) -> bool:
        return self.cluster_ids is not None

    def allows_address(self, address: str) -> bool:
        """Whether a request from `address` (the client IP as ClientIPMiddleware found it) may
        use the key. An address that does not parse is outside every network."""
        if not self.cidrs:
            return True
        try:
            # `::ffff:10.1.2.3` is the IPv4 client it names (a dual-stack listener's view).
            ip = unmapped_ip(address)
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(cidr, strict=False) for cidr in self.cidrs)

    def to_entry(self) -> dict[str, Any]:
        """A JSON-able form, for the authentication caches (apps.accounts.apikeys)."""
        return {
            "read_only": self.read_only,
            "cidrs": list(self.cidrs),
            "cluster_ids": (
                None if self.cluster_ids is None else sorted(str(c) for c in self.cluster_ids)
            ),
        }

    @classmethod
    def from_entry(cls, entry: dict[str, Any] | None) -> KeyScope | None:
        """The scope `to_entry` wrote; None when the key has no scope at all."""
        if not entry:
            return None
        ids = entry.get("cluster_ids")
        scope = cls(
            read_only=bool(entry.get("read_only")),
            cidrs=tuple(entry.get("cidrs") or ()),
            cluster_ids=None if ids is None else frozenset(uuid.UUID(i) for i in ids),
        )
        return None if scope == cls() else scope


@dataclass(frozen=True)
class OrgKeyPrincipal:
    """`request.auth` for a request authenticated with an org key/secret pair."""

    organization_id: uuid.UUID
    key_id: uuid.UUID
    scope: KeyScope | None = None
    # When the key expires (a Unix time); None: never.
    expires_at: float | None = None


def request_key_scope(request: Any) -> KeyScope | None:
    """The scope of the API key this request authenticated with; None for a key without
    scopes, a JWT, a browser session or no credential. A user key's `request.auth` is its
    verified cache entry (`key_id`, `scope`, ...), a JWT's its claims (with `sub`)."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, OrgKeyPrincipal):
        return auth.scope
    if isinstance(auth, dict) and "sub" not in auth:
        return KeyScope.from_entry(auth.get("scope"))
    return None


def request_key_expires_at(request: Any) -> float | None:
    """When the API key this request authenticated with expires (a Unix time); None for a key
    that never does, a JWT, a browser session or no credential."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, OrgKeyPrincipal):
        return auth.expires_at
    if isinstance(auth, dict) and "sub" not in auth:
        expires_at = auth.get("expires_at")
        return float(expires_at) if isinstance(expires_at, int | float) else None
    return None


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

"""Who may do what inside an organization: one table, enforced by one permission class.

Every tenant route names the permission each of its actions needs (reads default to READ,
everything else to WRITE); `ROLE_PERMISSIONS` says which roles hold it. Role failures are 403;
objects of another organization are never found (404), so their existence does not leak.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

from rest_framework.permissions import SAFE_METHODS, BasePermission

from apps.core.api.errors import APIError, forbidden, not_found
from apps.core.tenancy import (
    MACHINE_ROLE,
    OrgKeyPrincipal,
    get_tenant,
    parse_uuid,
    request_key_scope,
)

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView


class Perm(StrEnum):
    READ = "read"
    # The member list (people's e-mail addresses) and the org key list: about the people and
    # credentials of the organization, not its resources, so automation does not read them.
    READ_MEMBERS = "read_members"
    READ_KEYS = "read_keys"
    WRITE = "write"
    # Private SSH keys, credential secrets, kubeconfigs: an explicit, audited read.
    REVEAL_SECRETS = "reveal_secrets"
    # Job transcripts (bootstrap and cluster-run logs). Redaction hides every secret a job holds
    # in every encoding we know of, but the tooling prints what it likes; so only roles that can
    # already obtain those secrets read logs: those that reveal them, and members, who can run
    # an action with an image of their choosing on the bastion that holds them. Not viewers.
    READ_LOGS = "read_logs"
    MANAGE_KEYS = "manage_keys"
    MANAGE_MEMBERS = "manage_members"
    MANAGE_ORG = "manage_org"
    # Which Google groups grant which role, and the service account that reads them: it can
    # make anyone an owner, so it is the owners' alone.
    MANAGE_GROUP_SYNC = "manage_group_sync"
    DELETE_ORG = "delete_org"


_ALL = frozenset(Perm)

ROLE_PERMISSIONS: dict[str, frozenset[Perm]] = {
    "owner": _ALL,
    "admin": _ALL - {Perm.DELETE_ORG, Perm.MANAGE_GROUP_SYNC},
    "member": frozenset({Perm.READ, Perm.READ_MEMBERS, Perm.READ_KEYS, Perm.READ_LOGS, Perm.WRITE}),
    "viewer": frozenset({Perm.READ, Perm.READ_MEMBERS, Perm.READ_KEYS}),
    # An org key/secret pair is automation acting for the org (Terraform, the bastion tooling):
    # it reads, writes and reveals what it manages, and reads its organization, but never lists
    # or manages keys or people, nor manages the org (the original refused org keys there).
    MACHINE_ROLE: frozenset({Perm.READ, Perm.READ_LOGS, Perm.WRITE, Perm.REVEAL_SECRETS}),
}


# What a read-only key keeps of its principal's role: reading, nothing else. No writes, no
# secrets (stored kubeconfigs, join tokens, private keys), no management; and no job
# transcripts, which only roles that can already obtain the secrets they may print read.
READ_ONLY_KEY_PERMISSIONS = frozenset({Perm.READ, Perm.READ_MEMBERS, Perm.READ_KEYS})


# Power over people, keys, group sync and the organization itself: no scoped key uses it,
# whatever its role. A key limited to a network or to clusters is handed to automation; adding
# an owner, remapping a group or revoking keys would let it step outside its limits.
SCOPED_KEY_REFUSED_PERMISSIONS = frozenset(
    {
        Perm.MANAGE_KEYS,
        Perm.MANAGE_MEMBERS,
        Perm.MANAGE_ORG,
        Perm.MANAGE_GROUP_SYNC,
        Perm.DELETE_ORG,
    }
)


def key_scope_perm_check(request: Any, perm: Perm | None) -> None:
    """403 `key_scope_forbidden` when a key with any scope asks for a management permission."""
    if perm in SCOPED_KEY_REFUSED_PERMISSIONS and request_key_scope(request) is not None:
        raise forbidden(
            "key_scope_forbidden",
            "a scoped API key cannot manage keys, members, group sync or the organization; "
            "sign in instead",
        )


def role_allows(role: str, perm: Perm) -> bool:
    return perm in ROLE_PERMISSIONS.get(role, frozenset())


def request_allows(request: Any, role: str, perm: Perm) -> bool:
    """Whether this request's principal, acting with `role`, holds `perm`: the role table,
    narrowed by the key's scope (a read-only key holds READ_ONLY_KEY_PERMISSIONS at most).
    Every check of a permission made for an API request goes through here, not role_allows."""
    if not role_allows(role, perm):
        return False
    scope = request_key_scope(request)
    return scope is None or not scope.read_only or perm in READ_ONLY_KEY_PERMISSIONS


def required_permission(view: APIView, request: Request) -> Perm:
    """The permission the view's current action needs: its `required_permissions` entry, else
    READ for safe methods and WRITE for the rest."""
    action = getattr(view, "action", None) or (request.method or "").lower()
    declared = getattr(view, "required_permissions", {})
    if action in declared:
        return declared[action]
    return Perm.READ if request.method in SAFE_METHODS else Perm.WRITE


def key_scope_check(request: Request, view: APIView) -> None:
    """A key limited to clusters (docs/identity.md, "Scoped keys") reaches only routes about
    one cluster, and only its own: a view says which URL argument names the cluster
    (`cluster_kwarg`). Another cluster is 404, as if it did not exist; a route that is not
    about a cluster (servers, DNS, members, /me, ...) is 403, least privilege; listing clusters
    is allowed and the list holds only the key's (`OrgScopedViewSet.cluster_field`), creating
    one is 403, and so is attaching anything to its cluster (`key_scope_attach_actions`).
    Read-only keys and client networks are checked in authentication."""
    scope = request_key_scope(request)
    if scope is None or scope.cluster_ids is None:
        return
    kwarg = getattr(view, "cluster_kwarg", None)
    if kwarg is None:
        raise forbidden("key_scope_forbidden", "this API key may only touch its clusters")
    raw = getattr(view, "kwargs", {}).get(kwarg)
    if raw is None:
        if request.method in SAFE_METHODS:
            return
        raise forbidden("key_scope_forbidden", "this API key may only touch its clusters")
    cluster_id = parse_uuid(raw, code=getattr(view, "invalid_id_code", "invalid_id"), what=kwarg)
    if cluster_id not in scope.cluster_ids:
        raise not_found(getattr(view, "not_found_code", "not_found"), "cluster not found")
    # Attaching names an object in the body (a node pool, a bastion, a domain, a load balancer)
    # that other clusters may use too; runs would then reach it over SSH. The key's scope is
    # its clusters, not what they might be given, so it may detach but never attach.
    if request.method == "POST" and getattr(view, "action", None) in getattr(
        view, "key_scope_attach_actions", ()
    ):
        raise forbidden("key_scope_forbidden", "a key limited to clusters may not attach objects")


class HasOrgPermission(BasePermission):
    """Allows the request if its principal's role in the resolved organization holds the
    permission the action needs, and the key's cluster scope (if any) covers the route.
    Resolving the organization (and refusing a non-member) is the tenancy layer's job; this
    class only reads the result."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        tenant = get_tenant(request)
        perm = required_permission(view, request)
        if not request_allows(request, tenant.role, perm):
            raise forbidden("forbidden", "your role in this organization does not allow this")
        key_scope_perm_check(request, perm)
        key_scope_check(request, view)
        return True


class IsPlatformAdmin(BasePermission):
    """Platform-wide administration (the action catalogue): a signed-in person whose account is
    a platform admin (`User.is_admin`). No principal is 401; an org key is never a platform
    admin, and neither is a user without the flag: both are 403. No organization is involved."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = getattr(request, "user", None)
        if user is None or not getattr(user, "is_authenticated", False):
            raise APIError(401, "unauthorized", "authentication required")
        if isinstance(getattr(request, "auth", None), OrgKeyPrincipal) or not user.pk:
            raise forbidden("forbidden", "platform admin required")
        if not getattr(user, "is_admin", False) or getattr(user, "is_disabled", False):
            raise forbidden("forbidden", "platform admin required")
        key_scope_check(request, view)
        return True

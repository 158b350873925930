"""Who may do what inside an organization: one table, enforced by one permission class.

Every tenant route names the permission each of its actions needs (reads default to READ,
everything else to WRITE); `ROLE_PERMISSIONS` says which roles hold it. Role failures are 403;
objects of another organization are never found (404), so their existence does not leak.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from rest_framework.permissions import SAFE_METHODS, BasePermission

from apps.core.api.errors import APIError, forbidden
from apps.core.tenancy import MACHINE_ROLE, OrgKeyPrincipal, get_tenant

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


def role_allows(role: str, perm: Perm) -> bool:
    return perm in ROLE_PERMISSIONS.get(role, frozenset())


def required_permission(view: APIView, request: Request) -> Perm:
    """The permission the view's current action needs: its `required_permissions` entry, else
    READ for safe methods and WRITE for the rest."""
    action = getattr(view, "action", None) or (request.method or "").lower()
    declared = getattr(view, "required_permissions", {})
    if action in declared:
        return declared[action]
    return Perm.READ if request.method in SAFE_METHODS else Perm.WRITE


class HasOrgPermission(BasePermission):
    """Allows the request if its principal's role in the resolved organization holds the
    permission the action needs. Resolving the organization (and refusing a non-member) is the
    tenancy layer's job; this class only reads the result."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        tenant = get_tenant(request)
        if not role_allows(tenant.role, required_permission(view, request)):
            raise forbidden("forbidden", "your role in this organization does not allow this")
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
        return True

"""Permissions for user-level routes (/me, /orgs): a person, never an org key."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission

from apps.core.api.errors import APIError
from apps.core.permissions import key_scope_check, key_scope_perm_check
from apps.core.tenancy import OrgKeyPrincipal


class IsUserPrincipal(BasePermission):
    """A signed-in, enabled user. No principal, or an org key, is 401 (as in the contract:
    these routes are about a person). A view's `scoped_key_permissions` (method -> Perm) names
    the management its methods do, refused to scoped keys (`key_scope_perm_check`)."""

    def has_permission(self, request: Any, view: Any) -> bool:
        user = getattr(request, "user", None)
        if (
            user is None
            or not getattr(user, "is_authenticated", False)
            or isinstance(getattr(request, "auth", None), OrgKeyPrincipal)
            or not getattr(user, "pk", None)
            or getattr(user, "is_disabled", False)
        ):
            raise APIError(401, "unauthorized", "a signed-in user is required")
        key_scope_perm_check(
            request, getattr(view, "scoped_key_permissions", {}).get(request.method)
        )
        key_scope_check(request, view)
        return True

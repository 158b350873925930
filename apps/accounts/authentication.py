"""Authentication, in one layer and in the contract's order:

1. `X-ORG-KEY` + `X-ORG-SECRET` -> the organization's machine principal
   (`MachineUser(principal)`, `OrgKeyPrincipal(organization_id, key_id)`);
2. `Authorization: Bearer <JWT>` -> user;
3. `X-API-KEY: u_...` -> user;
4. cookie `ag_jwt` (browser pages; safe methods only, so it cannot be used for CSRF) -> user.

Verifying API keys, and every cache behind it, lives in `apps.accounts.apikeys`, shared with the
services that issue and revoke keys. Each process also remembers a verified key for
`API_KEY_LOCAL_CACHE_SECONDS` (default 10 s), with its user, so the hot path is one HMAC and a
dictionary lookup (P3: an API-key request costs at most 1.15x an anonymous one). What it
remembers is trusted only under the credential generation it was checked in, read for each
request in the rate limiter's round trip: revoking a key sets a new one, so the revocation takes
effect in every process at once. With the cache down, every request is checked against the
database (`apikeys`).

A credential that is present but wrong is 401 at once (no fall-through to the next method).
An empty header is not a credential, and an `Authorization` header with another scheme than
Bearer is ignored. No credential at all leaves the request anonymous; `authenticate_header`
makes the permission failure a 401 rather than a 403. Disabled users are refused by every method.

API keys are found with one indexed lookup by their public id. The argon2id hash is verified
only on a cache miss; a success is remembered in the cache for `API_KEY_CACHE_SECONDS` (<= 60 s)
as an HMAC digest of the full credential, compared in constant time on every request.
Revocation deletes the entry, and the TTL bounds how long a lost delete could matter.

Failed slow verifications are budgeted per client address (`API_KEY_MAX_FAILURES` a minute);
past it, only a credential issued or verified before is still checked (see
`apikeys.verify_api_key`).
"""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from apps.accounts import jwt as access_tokens
from apps.accounts import tokens
from apps.accounts.apikeys import local_lookup, local_remember, unauthorized, verify_api_key
from apps.accounts.models import APIKey, User
from apps.core.api.errors import APIError
from apps.core.cache import request_auth_generation
from apps.core.tenancy import KeyScope, MachineUser, OrgKeyPrincipal

COOKIE_NAME = "ag_jwt"
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def request_client_ip(request: Any) -> str:
    """The client address set by ClientIPMiddleware (on the Django request behind a DRF one)."""
    django_request = getattr(request, "_request", request)
    ip = getattr(django_request, "client_ip", None)
    return str(ip or django_request.META.get("REMOTE_ADDR", ""))


_Principal = TypeVar("_Principal")


def _within_scope(request: Request, scope: KeyScope | None, principal: _Principal) -> _Principal:
    """The two scopes every route obeys, checked where every API request passes: a key used
    from outside its networks is no credential here (401), and a read-only key may only read
    (403, whatever the route). The cluster scope needs the route, so the permission classes
    check it (apps.core.permissions.key_scope_check)."""
    if scope is None:
        return principal
    if not scope.allows_address(request_client_ip(request)):
        raise unauthorized("this key may not be used from your address")
    if scope.read_only and request.method not in _SAFE_METHODS:
        raise APIError(403, "read_only_key", "this API key is read-only")
    return principal


def _active_user(user_id: Any) -> User:
    user = User.objects.filter(pk=user_id).first()
    if user is None or user.is_disabled:
        raise unauthorized()
    return user


class AutoglueAuthentication(BaseAuthentication):
    """Every API principal. See the module docstring for the order and the rules."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        headers = request.headers
        # An empty header is no credential: generated clients send `X-ORG-KEY: ""` beside a
        # bearer token. The first credential actually present decides, as in the original.
        org_key = headers.get("X-ORG-KEY", "").strip()
        if org_key:
            return self._org_key(request, org_key, headers.get("X-ORG-SECRET", "").strip())
        scheme, _, token = headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() == "bearer":
            if not token.strip():
                raise unauthorized()
            return self._jwt(token.strip())
        # Any other Authorization scheme (Basic from a proxy, ...) is not ours to judge.
        api_key = headers.get("X-API-KEY", "").strip()
        if api_key:
            return self._user_key(request, api_key)
        cookie = request.COOKIES.get(COOKIE_NAME)
        if cookie and request.method in _SAFE_METHODS:
            token = cookie.removeprefix("Bearer ").strip()
            return self._jwt(token)
        return None

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'

    def _org_key(
        self, request: Request, key: str, secret: str
    ) -> tuple[MachineUser, OrgKeyPrincipal]:
        public_id = tokens.parse_org_key(key)
        if public_id is None or not secret:
            raise unauthorized("invalid org credentials")
        digest = tokens.keyed_digest(f"org:{key}:{secret}")
        generation = request_auth_generation(request)
        try:
            hit = local_lookup(public_id, digest, generation)
            if hit is not None:
                return _within_scope(request, hit[1].scope, hit)
            entry = verify_api_key(
                scope=APIKey.Scope.ORG,
                public_id=public_id,
                secret=secret,
                credential=f"{key}:{secret}",
                client_ip=request_client_ip(request),
                generation=generation,
            )
        except APIError as exc:
            if exc.status_code != 401:  # a scope refusal (read-only key writing) stands
                raise
            raise APIError(401, "unauthorized", "invalid org credentials") from exc
        principal = OrgKeyPrincipal(
            organization_id=uuid.UUID(entry["organization_id"]),
            key_id=uuid.UUID(entry["key_id"]),
            scope=KeyScope.from_entry(entry.get("scope")),
            expires_at=entry.get("expires_at"),
        )
        result = (MachineUser(principal), principal)
        local_remember(public_id, digest, entry, result)
        return _within_scope(request, principal.scope, result)

    def _user_key(self, request: Request, token: str) -> tuple[User, dict[str, Any]]:
        parsed = tokens.parse_user_key(token)
        if parsed is None:
            raise unauthorized()
        digest = tokens.keyed_digest(f"user:{token.strip()}")
        generation = request_auth_generation(request)
        hit = local_lookup(parsed.public_id, digest, generation)
        if hit is not None:
            return _within_scope(request, KeyScope.from_entry(hit[1].get("scope")), hit)
        entry = verify_api_key(
            scope=APIKey.Scope.USER,
            public_id=parsed.public_id,
            secret=parsed.secret,
            credential=token.strip(),
            client_ip=request_client_ip(request),
            generation=generation,
        )
        result = (_active_user(entry["user_id"]), entry)
        local_remember(parsed.public_id, digest, entry, result)
        return _within_scope(request, KeyScope.from_entry(entry.get("scope")), result)

    def _jwt(self, token: str) -> tuple[User, dict[str, Any]]:
        try:
            claims = access_tokens.decode_access_token(token)
        except access_tokens.InvalidAccessToken as exc:
            raise unauthorized() from exc
        try:
            user_id = uuid.UUID(str(claims["sub"]))
        except ValueError as exc:
            raise unauthorized() from exc
        return _active_user(user_id), claims

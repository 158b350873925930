"""Authentication, in one layer and in the contract's order:

1. `X-ORG-KEY` + `X-ORG-SECRET` -> the organization's machine principal
   (`MachineUser(principal)`, `OrgKeyPrincipal(organization_id, key_id)`);
2. `Authorization: Bearer <JWT>` -> user;
3. `X-API-KEY: u_...` -> user;
4. cookie `ag_jwt` (browser pages; safe methods only, so it cannot be used for CSRF) -> user.

Each process also remembers a verified key for `API_KEY_LOCAL_CACHE_SECONDS` (default 10 s), with
its user, so the hot path is one HMAC and a dictionary lookup (P3: an API-key request costs at
most 1.15x an anonymous one). Revoking a key, or disabling its user, therefore takes effect in
other processes within that period; in the revoking process at once.

A credential that is present but wrong is 401 at once (no fall-through to the next method).
An empty header is not a credential, and an `Authorization` header with another scheme than
Bearer is ignored. No credential at all leaves the request anonymous; `authenticate_header`
makes the permission failure a 401 rather than a 403. Disabled users are refused by every method.

API keys are found with one indexed lookup by their public id. The argon2id hash is verified
only on a cache miss; a success is remembered in the cache for `API_KEY_CACHE_SECONDS` (<= 60 s)
as an HMAC digest of the full credential, compared in constant time on every request.
Revocation deletes the entry, and the TTL bounds how long a lost delete could matter.

Failed slow verifications are budgeted per client address (`API_KEY_MAX_FAILURES` a minute);
past it, only a credential issued or verified before is still checked (see `verify_api_key`).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from apps.accounts import jwt as access_tokens
from apps.accounts import tokens
from apps.accounts.models import APIKey, User
from apps.accounts.services import (
    API_KEY_CACHE_PREFIX,
    API_KEY_GOOD_PREFIX,
    api_key_credential_digest,
    api_key_remember_good,
)
from apps.core.api.errors import APIError
from apps.core.tenancy import MachineUser, OrgKeyPrincipal

COOKIE_NAME = "ag_jwt"
_FAILURE_PREFIX = "apikey-fail:"
_SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def _unauthorized(message: str = "invalid credentials") -> APIError:
    return APIError(401, "unauthorized", message)


def _failure_key(client_ip: str) -> str:
    # Per client address, whatever the key id: a flood over many ids (or unknown ones, which
    # cost a slow hash too) is bounded as well as one over a single id.
    return f"{_FAILURE_PREFIX}{client_ip}"


def _budget_spent(client_ip: str) -> bool:
    count = cache.get(_failure_key(client_ip)) or 0
    return count >= settings.API_KEY_MAX_FAILURES


def _record_failure(client_ip: str) -> None:
    key = _failure_key(client_ip)
    if cache.add(key, 1, timeout=60):
        return
    try:
        cache.incr(key)
    except ValueError:
        cache.set(key, 1, timeout=60)


def _known_good(public_id: str, digest: str) -> bool:
    """Whether this exact credential was issued or verified before (see
    services.API_KEY_GOOD_PREFIX). Only ever lets a request *try* the slow hash."""
    remembered = cache.get(API_KEY_GOOD_PREFIX + public_id)
    return remembered is not None and tokens.digests_equal(remembered, digest)


_decoy: list[str] = []


def _decoy_hash() -> str:
    """An argon2id hash of a random secret, with the real parameters: an unknown key id costs
    the same verification as a wrong secret, so timing does not tell which ids exist."""
    if not _decoy:
        _decoy.append(tokens.slow_hash(tokens.new_secret()))
    return _decoy[0]


def request_client_ip(request: Any) -> str:
    """The client address set by ClientIPMiddleware (on the Django request behind a DRF one)."""
    django_request = getattr(request, "_request", request)
    ip = getattr(django_request, "client_ip", None)
    return str(ip or django_request.META.get("REMOTE_ADDR", ""))


def verify_api_key(
    *, scope: str, public_id: str, secret: str, credential: str, client_ip: str = ""
) -> dict[str, Any]:
    """The cached facts about a valid key (`key_id`, `user_id`, `organization_id`), or 401.

    `credential` is the whole presented credential: its HMAC is what the cache remembers, so a
    different secret for the same public id never matches a cached success."""
    cache_key = API_KEY_CACHE_PREFIX + public_id
    digest = api_key_credential_digest(scope=scope, credential=credential)
    now = time.time()
    entry = cache.get(cache_key)
    if entry is not None and tokens.digests_equal(entry["digest"], digest):
        if entry["expires_at"] is not None and entry["expires_at"] <= now:
            raise _unauthorized()
        return _touch(public_id, entry, now)

    # Cache miss (or a different secret): the slow path. Every failure (unknown id, wrong
    # secret, revoked or expired key) costs one argon2 verification and counts against the
    # client address; once its budget is spent, only a credential known to be right still gets
    # verified, so a flood burns no more CPU and the key's owner is never locked out. Every
    # failure answers the same message.
    if _budget_spent(client_ip) and not _known_good(public_id, digest):
        raise _unauthorized()
    key = APIKey.objects.filter(public_id=public_id, scope=scope).first()
    verified = tokens.slow_verify(key.secret_hash if key else _decoy_hash(), secret)
    if (
        key is None
        or not verified
        or key.revoked_at is not None
        or (key.expires_at and key.expires_at <= timezone.now())
    ):
        _record_failure(client_ip)
        raise _unauthorized()
    api_key_remember_good(public_id=public_id, digest=digest)
    entry = {
        "digest": digest,
        "key_id": str(key.pk),
        "user_id": str(key.user_id) if key.user_id else None,
        "organization_id": str(key.organization_id) if key.organization_id else None,
        "expires_at": key.expires_at.timestamp() if key.expires_at else None,
        "touched": 0.0,
    }
    return _touch(public_id, entry, now)


def _mark_used(public_id: str, key_id: str) -> None:
    """Write `last_used_at`, but only while the key is still valid in the database. A key revoked
    or expired meanwhile (another process, the admin, a lost cache delete) updates no row: its
    cache entries are dropped and the request is 401, so a touch can never revive a dead key."""
    now = timezone.now()
    updated = (
        APIKey.objects.filter(pk=key_id, revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .update(last_used_at=now)
    )
    if updated != 1:
        cache.delete(API_KEY_CACHE_PREFIX + public_id)
        forget_local_key(public_id)
        raise _unauthorized()


def _touch(public_id: str, entry: dict[str, Any], now: float) -> dict[str, Any]:
    """Record `last_used_at`, at most once per throttle period per key."""
    if now - entry["touched"] < settings.API_KEY_LAST_USED_THROTTLE_SECONDS:
        return entry
    _mark_used(public_id, entry["key_id"])
    entry = {**entry, "touched": now}
    cache.set(API_KEY_CACHE_PREFIX + public_id, entry, timeout=settings.API_KEY_CACHE_SECONDS)
    return entry


@dataclass
class _LocalHit:
    until: float
    digest: str
    entry: dict[str, Any]
    principal: tuple[Any, Any]


# public id -> a recently verified credential, per process (see the module docstring).
_local_keys: dict[str, _LocalHit] = {}
_LOCAL_MAX_ENTRIES = 10_000


def forget_local_key(public_id: str | None = None) -> None:
    """Drop this process's memory of one key (all keys when None): revocation, tests."""
    if public_id is None:
        _local_keys.clear()
    else:
        _local_keys.pop(public_id, None)


def _local_lookup(public_id: str, digest: str) -> tuple[Any, Any] | None:
    hit = _local_keys.get(public_id)
    if hit is None or not tokens.digests_equal(hit.digest, digest):
        return None
    now = time.time()
    expires_at = hit.entry["expires_at"]
    if hit.until < time.monotonic() or (expires_at is not None and expires_at <= now):
        _local_keys.pop(public_id, None)
        return None
    if now - hit.entry["touched"] >= settings.API_KEY_LAST_USED_THROTTLE_SECONDS:
        _mark_used(public_id, hit.entry["key_id"])
        hit.entry = {**hit.entry, "touched": now}
    return hit.principal


def _local_remember(public_id: str, digest: str, entry: dict, principal: tuple) -> None:
    if len(_local_keys) >= _LOCAL_MAX_ENTRIES:
        _local_keys.clear()
    _local_keys[public_id] = _LocalHit(
        until=time.monotonic() + settings.API_KEY_LOCAL_CACHE_SECONDS,
        digest=digest,
        entry=dict(entry),
        principal=principal,
    )


def _active_user(user_id: Any) -> User:
    user = User.objects.filter(pk=user_id).first()
    if user is None or user.is_disabled:
        raise _unauthorized()
    return user


class AutoglueAuthentication(BaseAuthentication):
    """Every API principal. See the module docstring for the order and the rules."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        headers = request.headers
        # An empty header is no credential: generated clients send `X-ORG-KEY: ""` beside a
        # bearer token. The first credential actually present decides, as in the original.
        org_key = headers.get("X-ORG-KEY", "").strip()
        if org_key:
            return self._org_key(
                org_key, headers.get("X-ORG-SECRET", "").strip(), request_client_ip(request)
            )
        scheme, _, token = headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() == "bearer":
            if not token.strip():
                raise _unauthorized()
            return self._jwt(token.strip())
        # Any other Authorization scheme (Basic from a proxy, ...) is not ours to judge.
        api_key = headers.get("X-API-KEY", "").strip()
        if api_key:
            return self._user_key(api_key, request_client_ip(request))
        cookie = request.COOKIES.get(COOKIE_NAME)
        if cookie and request.method in _SAFE_METHODS:
            token = cookie.removeprefix("Bearer ").strip()
            return self._jwt(token)
        return None

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'

    def _org_key(
        self, key: str, secret: str, client_ip: str
    ) -> tuple[MachineUser, OrgKeyPrincipal]:
        public_id = tokens.parse_org_key(key)
        if public_id is None or not secret:
            raise _unauthorized("invalid org credentials")
        digest = tokens.keyed_digest(f"org:{key}:{secret}")
        hit = _local_lookup(public_id, digest)
        if hit is not None:
            return hit
        try:
            entry = verify_api_key(
                scope=APIKey.Scope.ORG,
                public_id=public_id,
                secret=secret,
                credential=f"{key}:{secret}",
                client_ip=client_ip,
            )
        except APIError as exc:
            raise APIError(401, "unauthorized", "invalid org credentials") from exc
        principal = OrgKeyPrincipal(
            organization_id=uuid.UUID(entry["organization_id"]), key_id=uuid.UUID(entry["key_id"])
        )
        result = (MachineUser(principal), principal)
        _local_remember(public_id, digest, entry, result)
        return result

    def _user_key(self, token: str, client_ip: str) -> tuple[User, dict[str, Any]]:
        parsed = tokens.parse_user_key(token)
        if parsed is None:
            raise _unauthorized()
        digest = tokens.keyed_digest(f"user:{token.strip()}")
        hit = _local_lookup(parsed.public_id, digest)
        if hit is not None:
            return hit
        entry = verify_api_key(
            scope=APIKey.Scope.USER,
            public_id=parsed.public_id,
            secret=parsed.secret,
            credential=token.strip(),
            client_ip=client_ip,
        )
        result = (_active_user(entry["user_id"]), entry)
        _local_remember(parsed.public_id, digest, entry, result)
        return result

    def _jwt(self, token: str) -> tuple[User, dict[str, Any]]:
        try:
            claims = access_tokens.decode_access_token(token)
        except access_tokens.InvalidAccessToken as exc:
            raise _unauthorized() from exc
        try:
            user_id = uuid.UUID(str(claims["sub"]))
        except ValueError as exc:
            raise _unauthorized() from exc
        return _active_user(user_id), claims

"""API-key verification and the caches behind it, below both the DRF authentication class
(`apps.accounts.authentication`) and the services (`apps.accounts.services`): both import this
module and it imports neither, so issuing, revoking and checking a key share one set of cache
keys without an import circle.

Three memories, from fastest to slowest (docs/identity.md, "API keys"):

- per process, a recently verified credential with its principal, for
  `API_KEY_LOCAL_CACHE_SECONDS` (`local_lookup` / `local_remember` / `forget_local_key`);
- the shared cache entry `apikey:<public id>` for `API_KEY_CACHE_SECONDS`, holding an HMAC digest
  of the full credential, compared in constant time on every request;
- the *known good* marker `apikey-good:<public id>`: a digest of the rightful credential, kept
  from creation and every success, which never authenticates by itself but exempts that
  credential from the per-address failure budget (`API_KEY_MAX_FAILURES` a minute).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Q
from django.utils import timezone

from apps.accounts import tokens
from apps.accounts.models import APIKey
from apps.core.api.errors import APIError

API_KEY_CACHE_PREFIX = "apikey:"
# A digest of each key's full credential, remembered from its creation and every successful
# verification: it never authenticates by itself, it only exempts the rightful credential from
# the per-address failure budget, so a flood of wrong secrets from a shared address cannot lock
# the key's owner out.
API_KEY_GOOD_PREFIX = "apikey-good:"
API_KEY_GOOD_SECONDS = 30 * 24 * 3600
_FAILURE_PREFIX = "apikey-fail:"


def unauthorized(message: str = "invalid credentials") -> APIError:
    return APIError(401, "unauthorized", message)


def api_key_credential_digest(*, scope: str, credential: str) -> str:
    """The keyed digest authentication compares for a presented credential (user key, or
    `org key:secret`)."""
    return tokens.keyed_digest(f"{scope}:{credential}")


def api_key_remember_good(*, public_id: str, digest: str) -> None:
    cache.set(API_KEY_GOOD_PREFIX + public_id, digest, timeout=API_KEY_GOOD_SECONDS)


def api_key_forget(*, public_id: str) -> None:
    """Forget everything remembered about a key (the shared entries and this process's), so the
    next request re-reads the row."""
    cache.delete_many([API_KEY_CACHE_PREFIX + public_id, API_KEY_GOOD_PREFIX + public_id])
    forget_local_key(public_id)


# --- The failure budget ------------------------------------------------------------------------


def _failure_key(client_ip: str) -> str:
    # Per client address, whatever the key id: a flood over many ids (or unknown ones, which
    # cost a slow hash too) is bounded as well as one over a single id.
    return f"{_FAILURE_PREFIX}{client_ip}"


def _budget_spent(client_ip: str) -> bool:
    count = cache.get(_failure_key(client_ip)) or 0
    return bool(count >= settings.API_KEY_MAX_FAILURES)


def _record_failure(client_ip: str) -> None:
    key = _failure_key(client_ip)
    if cache.add(key, 1, timeout=60):
        return
    try:
        cache.incr(key)
    except ValueError:
        cache.set(key, 1, timeout=60)


def _known_good(public_id: str, digest: str) -> bool:
    """Whether this exact credential was issued or verified before (see API_KEY_GOOD_PREFIX).
    Only ever lets a request *try* the slow hash."""
    remembered = cache.get(API_KEY_GOOD_PREFIX + public_id)
    return remembered is not None and tokens.digests_equal(remembered, digest)


_decoy: list[str] = []


def _decoy_hash() -> str:
    """An argon2id hash of a random secret, with the real parameters: an unknown key id costs
    the same verification as a wrong secret, so timing does not tell which ids exist."""
    if not _decoy:
        _decoy.append(tokens.slow_hash(tokens.new_secret()))
    return _decoy[0]


# --- Verification ------------------------------------------------------------------------------


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
            raise unauthorized()
        return _touch(public_id, entry, now)

    # Cache miss (or a different secret): the slow path. Every failure (unknown id, wrong
    # secret, revoked or expired key) costs one argon2 verification and counts against the
    # client address; once its budget is spent, only a credential known to be right still gets
    # verified, so a flood burns no more CPU and the key's owner is never locked out. Every
    # failure answers the same message.
    if _budget_spent(client_ip) and not _known_good(public_id, digest):
        raise unauthorized()
    key = APIKey.objects.filter(public_id=public_id, scope=scope).first()
    verified = tokens.slow_verify(key.secret_hash if key else _decoy_hash(), secret)
    if (
        key is None
        or not verified
        or key.revoked_at is not None
        or (key.expires_at and key.expires_at <= timezone.now())
    ):
        _record_failure(client_ip)
        raise unauthorized()
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
        raise unauthorized()


def _touch(public_id: str, entry: dict[str, Any], now: float) -> dict[str, Any]:
    """Record `last_used_at`, at most once per throttle period per key."""
    if now - entry["touched"] < settings.API_KEY_LAST_USED_THROTTLE_SECONDS:
        return entry
    _mark_used(public_id, entry["key_id"])
    entry = {**entry, "touched": now}
    cache.set(API_KEY_CACHE_PREFIX + public_id, entry, timeout=settings.API_KEY_CACHE_SECONDS)
    return entry


# --- This process's memory ---------------------------------------------------------------------


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


def local_lookup(public_id: str, digest: str) -> tuple[Any, Any] | None:
    """The principal this process verified for exactly this credential, while still fresh."""
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


def local_remember(
    public_id: str, digest: str, entry: dict[str, Any], principal: tuple[Any, Any]
) -> None:
    if len(_local_keys) >= _LOCAL_MAX_ENTRIES:
        _local_keys.clear()
    _local_keys[public_id] = _LocalHit(
        until=time.monotonic() + settings.API_KEY_LOCAL_CACHE_SECONDS,
        digest=digest,
        entry=dict(entry),
        principal=principal,
    )

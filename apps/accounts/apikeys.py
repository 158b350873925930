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

The first two are stamped with the credential generation they were checked under
(`apps.core.cache`) and trusted only while it is unchanged. A revocation sets a new generation
once committed, so the next request in any process checks the key's row again (one indexed
query, no slow hash: the credential's digest was verified before): revocation is immediate
everywhere. With the cache down the generation is unknown, and every request is checked against
the database, as the original does: the process's memory still spares the slow hash, and the
failure budget is kept per process.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.accounts import tokens
from apps.accounts.models import APIKey, User
from apps.core.api.errors import APIError
from apps.core.cache import (
    CACHE_UNAVAILABLE,
    auth_generation_bump_quietly,
    cache_down,
    cache_failed,
)
from apps.core.tenancy import KeyScope

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
    if cache_down():
        return
    try:
        cache.set(API_KEY_GOOD_PREFIX + public_id, digest, timeout=API_KEY_GOOD_SECONDS)
    except CACHE_UNAVAILABLE:
        cache_failed()  # only an exemption from the budget is lost


def api_key_forget(*, public_id: str) -> None:
    """Forget everything remembered about a key (the shared entries and this process's) and,
    once the surrounding transaction commits, set a new credential generation, so every process
    checks the key's row again on its next request. Works with the cache down: every process is
    then checking the database anyway, and this one sets a new generation when it reaches the
    cache again. The cache is tried even within `cache_down`'s retry delay (see
    `auth_generation_bump_quietly`): other processes must not keep trusting the shared entry."""
    forget_local_key(public_id)
    try:
        cache.delete_many([API_KEY_CACHE_PREFIX + public_id, API_KEY_GOOD_PREFIX + public_id])
    except CACHE_UNAVAILABLE:
        cache_failed()
    # After the commit: a process that checks the row before it would stamp the old state with
    # the new generation.
    api_key_generation_change()


def api_key_generation_change() -> None:
    """Once the surrounding transaction commits, set a new credential generation: every process
    checks the keys it remembers against their rows (and users) on its next request."""
    transaction.on_commit(auth_generation_bump_quietly)


# --- The failure budget ------------------------------------------------------------------------


def _failure_key(client_ip: str) -> str:
    # Per client address, whatever the key id: a flood over many ids (or unknown ones, which
    # cost a slow hash too) is bounded as well as one over a single id.
    return f"{_FAILURE_PREFIX}{client_ip}"


# With the cache down, failures are counted per process (address -> (minute, count)): a flood
# still burns at most the budget's worth of slow hashes per process and minute.
_local_failures: dict[str, tuple[int, int]] = {}


def _budget_spent(client_ip: str, shared: bool) -> bool:
    if shared:
        try:
            count = cache.get(_failure_key(client_ip)) or 0
        except CACHE_UNAVAILABLE:
            cache_failed()
            shared = False
    if not shared:
        minute, count = _local_failures.get(client_ip, (0, 0))
        count = count if minute == int(time.time() // 60) else 0
    return bool(count >= settings.API_KEY_MAX_FAILURES)


def _record_failure(client_ip: str, shared: bool) -> None:
    if shared:
        key = _failure_key(client_ip)
        try:
            if cache.add(key, 1, timeout=60):
                return
            try:
                cache.incr(key)
            except ValueError:
                cache.set(key, 1, timeout=60)
            return
        except CACHE_UNAVAILABLE:
            cache_failed()
    minute = int(time.time() // 60)
    if len(_local_failures) >= _LOCAL_MAX_ENTRIES:
        _local_failures.clear()
    last, count = _local_failures.get(client_ip, (minute, 0))
    _local_failures[client_ip] = (minute, count + 1 if last == minute else 1)


def _known_good(public_id: str, digest: str, shared: bool) -> bool:
    """Whether this exact credential was issued or verified before (see API_KEY_GOOD_PREFIX).
    Only ever lets a request *try* the slow hash."""
    if not shared:
        return False
    try:
        remembered = cache.get(API_KEY_GOOD_PREFIX + public_id)
    except CACHE_UNAVAILABLE:
        cache_failed()
        return False
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
    *,
    scope: str,
    public_id: str,
    secret: str,
    credential: str,
    client_ip: str = "",
    generation: int | None = None,
) -> dict[str, Any]:
    """The cached facts about a valid key (`key_id`, `user_id`, `organization_id`), or 401.

    `credential` is the whole presented credential: its HMAC is what the cache remembers, so a
    different secret for the same public id never matches a cached success. `generation` is the
    request's credential generation (`apps.core.cache.request_auth_generation`); None means the
    cache is down, and the key is then verified against the database alone."""
    cache_key = API_KEY_CACHE_PREFIX + public_id
    digest = api_key_credential_digest(scope=scope, credential=credential)
    now = time.time()
    shared = generation is not None
    entry = _shared_entry(cache_key) if shared else None
    if entry is not None and tokens.digests_equal(entry["digest"], digest):
        if entry["expires_at"] is not None and entry["expires_at"] <= now:
            raise unauthorized()
        return _touch(public_id, entry, now, generation)

    # Cache miss (or a different secret): the slow path. Every failure (unknown id, wrong
    # secret, revoked or expired key) costs one argon2 verification and counts against the
    # client address; once its budget is spent, only a credential known to be right still gets
    # verified, so a flood burns no more CPU and the key's owner is never locked out. Every
    # failure answers the same message.
    if _budget_spent(client_ip, shared) and not _known_good(public_id, digest, shared):
        raise unauthorized()
    key = APIKey.objects.filter(public_id=public_id, scope=scope).first()
    verified = tokens.slow_verify(key.secret_hash if key else _decoy_hash(), secret)
    if (
        key is None
        or not verified
        or key.revoked_at is not None
        or (key.expires_at and key.expires_at <= timezone.now())
    ):
        _record_failure(client_ip, shared)
        raise unauthorized()
    if shared:
        api_key_remember_good(public_id=public_id, digest=digest)
    entry = {
        "digest": digest,
        "key_id": str(key.pk),
        "user_id": str(key.user_id) if key.user_id else None,
        "organization_id": str(key.organization_id) if key.organization_id else None,
        "expires_at": key.expires_at.timestamp() if key.expires_at else None,
        # Fixed at creation, so remembering it is as safe as remembering the key itself.
        "scope": api_key_scope(key).to_entry() if key.is_scoped else None,
        "touched": 0.0,
        # Read before the row was, so a revocation committed after the read is a newer one.
        "generation": generation,
    }
    return _touch(public_id, entry, now, generation)


def _shared_entry(cache_key: str) -> dict[str, Any] | None:
    try:
        entry: dict[str, Any] | None = cache.get(cache_key)
    except CACHE_UNAVAILABLE:
        cache_failed()
        return None
    if entry is not None and "scope" not in entry:
        # Written by a release that did not know scopes: a miss, so the row is read again
        # rather than a scoped key being taken for an unlimited one.
        return None
    return entry


def api_key_scope(key: APIKey) -> KeyScope:
    """The key's scopes, as authentication and authorization carry them."""
    return KeyScope(
        read_only=key.read_only,
        cidrs=tuple(key.allowed_cidrs or ()),
        cluster_ids=(
            frozenset(uuid.UUID(str(c)) for c in key.allowed_cluster_ids)
            if key.allowed_cluster_ids
            else None
        ),
    )


def _valid_rows(key_id: str, now: datetime) -> QuerySet[APIKey]:
    """The key's row, if it still allows the key (not revoked, not expired, its user not
    disabled)."""
    return (
        APIKey.objects.filter(pk=key_id, revoked_at__isnull=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .filter(Q(user__isnull=True) | Q(user__is_disabled=False))
    )


def _key_valid(key_id: str, *, touch: bool) -> bool:
    """Whether the key's row still allows it, in one indexed query; with `touch`, the same
    statement records `last_used_at`. A key revoked or expired meanwhile updates no row, so a
    touch can never revive a dead key."""
    now = timezone.now()
    rows = _valid_rows(key_id, now)
    if touch:
        return rows.update(last_used_at=now) == 1
    return rows.exists()


def _key_user(key_id: str, *, touch: bool) -> User | None:
    """The key's user as it is now (None: the key or its user no longer allows it), read with
    the key's row in one query; with `touch`, `last_used_at` is recorded in a second one."""
    now = timezone.now()
    row = _valid_rows(key_id, now).select_related("user").first()
    if row is None or row.user is None:
        return None
    if touch and _valid_rows(key_id, now).update(last_used_at=now) != 1:
        return None
    return row.user


def api_key_still_valid(key_id: Any) -> bool:
    """Whether a key accepted earlier would still be accepted now (not revoked, not expired, its
    user not disabled): for a response that outlives its request, e.g. a live log stream."""
    return _key_valid(str(key_id), touch=False)


def _refuse(public_id: str) -> APIError:
    """The key is no longer valid: drop what is remembered of it, answer 401."""
    forget_local_key(public_id)
    if cache_down():
        return unauthorized()
    try:
        cache.delete(API_KEY_CACHE_PREFIX + public_id)
    except CACHE_UNAVAILABLE:
        cache_failed()
    return unauthorized()


def _touch(
    public_id: str, entry: dict[str, Any], now: float, generation: int | None
) -> dict[str, Any]:
    """Check the row again when the entry's generation is not the request's (a key was revoked
    since, or the cache is down), and record `last_used_at` at most once per throttle period;
    one query at most, none on the hot path."""
    return _touch_reading_user(public_id, entry, now, generation, read_user=False)[0]


def _touch_reading_user(
    public_id: str, entry: dict[str, Any], now: float, generation: int | None, *, read_user: bool
) -> tuple[dict[str, Any], User | None]:
    """`_touch`; with `read_user`, a row checked again also brings back the key's user as it is
    now (in the same query), for a principal remembered from before the generation changed."""
    due = now - entry["touched"] >= settings.API_KEY_LAST_USED_THROTTLE_SECONDS
    current = generation is not None and entry.get("generation") == generation
    if current and not due:
        return entry, None
    user = None
    if read_user and not current:
        user = _key_user(entry["key_id"], touch=due)
        if user is None:
            raise _refuse(public_id)
    elif not _key_valid(entry["key_id"], touch=due):
        raise _refuse(public_id)
    entry = {**entry, "generation": generation, "touched": now if due else entry["touched"]}
    if generation is not None:
        try:
            cache.set(
                API_KEY_CACHE_PREFIX + public_id, entry, timeout=settings.API_KEY_CACHE_SECONDS
            )
        except CACHE_UNAVAILABLE:
            cache_failed()
    return entry, user


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


def local_lookup(public_id: str, digest: str, generation: int | None) -> tuple[Any, Any] | None:
    """The principal this process verified for exactly this credential, while still fresh and
    of the request's generation; otherwise (another generation, or the cache down) after
    checking the key's row again, and with the user read again in the same query: a generation
    changes when a user's rights do (`services.user_access_changed`), so a demoted admin is no
    admin here any more. With the cache down the memory is used past its lifetime: every use is
    checked against the database, user included."""
    hit = _local_keys.get(public_id)
    if hit is None or not tokens.digests_equal(hit.digest, digest):
        return None
    now = time.time()
    expires_at = hit.entry["expires_at"]
    stale = hit.until < time.monotonic() and generation is not None
    if stale or (expires_at is not None and expires_at <= now):
        _local_keys.pop(public_id, None)
        return None
    read_user = hit.entry["user_id"] is not None
    hit.entry, user = _touch_reading_user(
        public_id, hit.entry, now, generation, read_user=read_user
    )
    if user is not None:
        hit.principal = (user, hit.principal[1])
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

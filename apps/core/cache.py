"""Django's Redis cache, minus two costs on the per-request path (the rate limiter's counter),
and the *credential generation* every process checks its remembered credentials against.

Django's client builds a new `redis.Redis` object for every call and increments with two round
trips (EXISTS, then INCRBY). This client keeps one `redis.Redis` per connection pool (it is
thread-safe, and the pool itself handles forks) and increments with one atomic script call.
Its connection pools are the process's, not the cache object's: under ASGI Django makes a cache
object for every request, and a pool per object kept each request's connection open until the
garbage collector came by (over a thousand idle Redis connections on two web workers). One pool
per server holds only as many connections as commands ever ran at once. Behaviour is otherwise
Django's own.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import redis.exceptions
from django.core.cache import cache
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient

# The shared cache is unreachable (refused, reset, timed out, or still loading after a restart).
CACHE_UNAVAILABLE: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
)

# Increment only an existing key, atomically, in one round trip; nil when the key is missing.
_INCR_EXISTING = """
if redis.call('exists', KEYS[1]) == 1 then
  return redis.call('incrby', KEYS[1], ARGV[1])
end
return nil
"""


# server URL and pool options -> the process's connection pool for them.
_POOLS: dict[tuple[str, str], Any] = {}
_POOLS_LOCK = threading.Lock()


class FastRedisCacheClient(RedisCacheClient):
    # Parts of Django's client that its stubs leave out (private, but stable since Django 4.0).
    _client: type[Any]
    _get_connection_pool_index: Callable[[bool], int]
    _pools: dict[int, Any]
    _servers: list[str]
    _pool_class: Any
    _pool_options: dict[str, Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}
        self._incr_scripts: dict[int, Any] = {}

    def _get_connection_pool(self, write: bool) -> Any:  # type: ignore[override]
        index = self._get_connection_pool_index(write)
        server = self._servers[index]
        shared = (server, repr(sorted(self._pool_options.items())))
        pool = _POOLS.get(shared)
        if pool is None:
            with _POOLS_LOCK:
                pool = _POOLS.get(shared)
                if pool is None:
                    pool = _POOLS[shared] = self._pool_class.from_url(server, **self._pool_options)
        self._pools[index] = pool
        return pool

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client

    def incr(self, key: Any, delta: int) -> int:
        client = self.get_client(key, write=True)
        script = self._incr_scripts.get(id(client))
        if script is None:
            script = self._incr_scripts[id(client)] = client.register_script(_INCR_EXISTING)
        value = script(keys=[key], args=[delta])
        if value is None:
            raise ValueError(f"Key '{key}' not found.")
        return int(value)


class RedisCache(DjangoRedisCache):
    def __init__(self, server: Any, params: dict) -> None:
        super().__init__(server, params)
        self._class = FastRedisCacheClient


# --- The credential generation ----------------------------------------------------------------
#
# Whatever a process remembers about a verified credential (apps.accounts.apikeys) is stamped
# with the generation it was checked under, and trusted only while the generation is unchanged.
# Revoking a key sets a new generation once the revocation is committed, so every process, on its
# next request, sees that its memory is older and checks the database again: revocation takes
# effect everywhere at once. The generation is read in the rate limiter's round trip (no extra
# one on the hot path). Its values are random, never a counter, so a Redis that restarts empty
# can never bring back a value something was stamped with before.
AUTH_GENERATION_KEY = "auth-generation"

# Set when this process failed to reach the cache; the next successful read sets a new generation
# first, so anything stamped before an outage (during which a key may have been revoked without
# the cache hearing of it) is checked again.
_outage_seen = False
# After a failure this process leaves the cache alone for a moment: a Redis that does not answer
# (partitioned, frozen) costs one request the socket timeout, not every request, and a refused one
# costs no connection attempt per request. Meanwhile the rate limit fails open and keys are
# checked against the database, as during any outage.
CACHE_RETRY_SECONDS = 2.0
_down_until = 0.0


def cache_outage_forget() -> None:
    """Forget that the cache failed (tests: each one starts with it reachable)."""
    global _outage_seen, _down_until  # noqa: PLW0603 - one flag per process, by design
    _outage_seen = False
    _down_until = 0.0


def cache_down() -> bool:
    """Whether this process failed to reach the cache within the last CACHE_RETRY_SECONDS."""
    return time.monotonic() < _down_until


def auth_generation_bump() -> int:
    """Set a new generation (raises CACHE_UNAVAILABLE if the cache is down)."""
    value = secrets.randbits(62)
    cache.set(AUTH_GENERATION_KEY, value, timeout=None)
    return value


def auth_generation_bump_quietly() -> None:
    """A new generation, or, if the cache cannot be reached, one as soon as this process reaches
    it again. Tried even within `cache_down`'s retry delay: this runs only on rare writes
    (revocations, access changes), and a process that serves no API request (the console, a
    Celery sweep, a management command) would otherwise never set the deferred one, leaving
    other processes trusting a revoked key; the cost is one socket timeout at most."""
    try:
        auth_generation_bump()
    except CACHE_UNAVAILABLE:
        cache_failed()


def cache_failed() -> None:
    """Note that the cache could not be reached: the credential generation is unknown for this
    request, a new one is set on the next successful read, and the cache is left alone for
    CACHE_RETRY_SECONDS (`cache_down`)."""
    global _outage_seen, _down_until  # noqa: PLW0603 - one flag per process, by design
    _outage_seen = True
    _down_until = time.monotonic() + CACHE_RETRY_SECONDS


def auth_generation_seen(value: Any) -> int | None:
    """The generation for this request, from what a read that reached the cache found there
    (None when missing: the cache was flushed or restarted, so a new one starts)."""
    global _outage_seen  # noqa: PLW0603 - one flag per process, by design
    if value is None or _outage_seen:
        try:
            value = auth_generation_bump()
        except CACHE_UNAVAILABLE:
            cache_failed()
            return None
        _outage_seen = False
    return int(value)


def auth_generation_read() -> int | None:
    """The current generation in one round trip, for a request the rate limiter did not read it
    for; None when the cache is down."""
    if cache_down():
        return None
    try:
        value = cache.get(AUTH_GENERATION_KEY)
    except CACHE_UNAVAILABLE:
        cache_failed()
        return None
    return auth_generation_seen(value)


def request_auth_generation(request: Any) -> int | None:
    """The generation read for this request (by the rate limiter, or now); None: cache down."""
    django_request = getattr(request, "_request", request)
    if not hasattr(django_request, "auth_generation"):
        django_request.auth_generation = auth_generation_read()
    generation: int | None = django_request.auth_generation
    return generation

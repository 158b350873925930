"""Django's Redis cache, minus two costs on the per-request path (the rate limiter's counter).

Django's client builds a new `redis.Redis` object for every call and increments with two round
trips (EXISTS, then INCRBY). This client keeps one `redis.Redis` per connection pool (it is
thread-safe, and the pool itself handles forks) and increments with one atomic script call.
Behaviour is otherwise Django's own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient

# Increment only an existing key, atomically, in one round trip; nil when the key is missing.
_INCR_EXISTING = """
if redis.call('exists', KEYS[1]) == 1 then
  return redis.call('incrby', KEYS[1], ARGV[1])
end
return nil
"""


class FastRedisCacheClient(RedisCacheClient):
    # Parts of Django's client that its stubs leave out (private, but stable since Django 4.0).
    _client: type[Any]
    _get_connection_pool: Callable[[bool], Any]
    _pools: dict[int, Any]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}
        self._incr_scripts: dict[int, Any] = {}

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

    def disconnect(self) -> None:
        """Close this client's connections (its pools reconnect if used again)."""
        for pool in self._pools.values():
            pool.disconnect()


class RedisCache(DjangoRedisCache):
    def __init__(self, server: Any, params: dict) -> None:
        super().__init__(server, params)
        self._class = FastRedisCacheClient

    def disconnect(self) -> None:
        """Under ASGI Django keeps a cache object per request, each with its own pool; a
        request that goes on for long (a live log stream) drops its connection this way
        instead of holding it until it ends."""
        client = self.__dict__.get("_cache")
        if client is not None:
            client.disconnect()

"""The Redis cache behind the rate limiter, against the real Redis."""

import threading

import pytest
from django.core.cache import cache


def test_incr_counts_atomically_across_threads():
    cache.set("counter", 0, 60)

    def bump():
        for _ in range(200):
            cache.incr("counter")

    threads = [threading.Thread(target=bump) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.get("counter") == 1000


def test_incr_of_a_missing_key_raises_like_django_and_creates_nothing():
    with pytest.raises(ValueError, match="not found"):
        cache.incr("never-set")
    assert cache.get("never-set") is None


def test_incr_keeps_the_key_expiry():
    cache.set("ttl-counter", 1, 30)
    cache.incr("ttl-counter", 4)
    assert cache.get("ttl-counter") == 5
    client = cache._cache.get_client(write=True)
    assert 0 < client.ttl(cache.make_key("ttl-counter")) <= 30


def test_cache_objects_made_per_request_share_the_processs_redis_connections():
    """Under ASGI Django makes a cache object for every request; each used to bring a pool of its
    own, so every request left a Redis connection open until garbage collection."""
    import gc

    import psutil
    from django.conf import settings
    from django.core.cache import caches

    port = int(settings.CACHES["default"]["LOCATION"].rsplit(":", 1)[1].split("/")[0])

    def redis_sockets() -> int:
        return sum(
            1
            for c in psutil.Process().net_connections(kind="tcp")
            if c.raddr and c.raddr.port == port
        )

    gc.disable()  # what the garbage collector would close must not hide a leak
    try:
        before = redis_sockets()
        per_request = [caches.create_connection("default") for _ in range(30)]
        for cache_object in per_request:
            cache_object.get("anything")
        assert redis_sockets() <= before + 1
    finally:
        gc.enable()

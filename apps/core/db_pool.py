"""The per-process pool of PostgreSQL connections (Django's own, on psycopg's pool): its options,
and what a forked child does with a pool its parent opened
(docs/architecture.md#database-connections).

Read by the settings, so it imports nothing from Django's database layer at module level."""

from __future__ import annotations

import os
import sys
from typing import Any

# How long the pool keeps retrying one failed connection attempt, with its doubling backoff
# (1, 2, 4, 8 s...), before giving up on it. psycopg's default (5 minutes) lets the backoff
# grow to a minute or more, so after a long outage the pool could sleep well past the
# database's return. Giving up sooner costs nothing: the next request that finds no free
# connection starts a new attempt at once.
RECONNECT_TIMEOUT_SECONDS = 10.0

# Pools inherited through a fork, kept referenced so the child never closes them (see below).
_inherited: list[Any] = []


def pool_options(*, max_size: int, timeout: float) -> dict[str, Any]:
    """The `OPTIONS["pool"]` Django passes to psycopg_pool.ConnectionPool. Django adds the
    connection settings, `configure` and, with CONN_HEALTH_CHECKS, `check`; the pool is opened
    on the first query of the process that uses it."""
    return {
        # Nothing opened in advance: an idle process holds no session, a busy one at most
        # max_size; connections unused for max_idle seconds are closed again.
        "min_size": 0,
        "max_size": max_size,
        # How long a request waits for a free connection before PoolTimeout, an
        # OperationalError, which the API and the pages answer 503 with Retry-After.
        "timeout": timeout,
        "max_idle": 60.0,
        "reconnect_timeout": RECONNECT_TIMEOUT_SECONDS,
        "name": "autoglue",
    }


def _forget_inherited_pools() -> None:
    """In a freshly forked child: drop the pools the parent had opened, without closing them.
    Their connections are the parent's sockets (closing one would end the parent's session) and
    their worker threads did not survive the fork; the child opens a pool of its own on its
    first query. Nothing is imported here: a process that never loaded the PostgreSQL backend
    has no pool to forget."""
    backend = sys.modules.get("django.db.backends.postgresql.base")
    if backend is None:
        return
    pools = backend.DatabaseWrapper._connection_pools
    _inherited.extend(pools.values())
    pools.clear()


def pool_exhausted(alias: str = "default") -> bool:
    """Whether this process's pool for `alias` has every connection it may open in use, so the
    next request for one waits. False with no pool, or one not opened yet (looking never opens
    it: that would take a connection)."""
    backend = sys.modules.get("django.db.backends.postgresql.base")
    if backend is None:
        return False
    pool = backend.DatabaseWrapper._connection_pools.get(alias)
    if pool is None:
        return False
    stats = pool.get_stats()
    return bool(stats.get("pool_size", 0) >= pool.max_size and not stats.get("pool_available", 0))


def database_answers(alias: str = "default", *, connect_timeout: int = 2) -> None:
    """Connects to the database on a session of its own, outside the pool, runs `SELECT 1` and
    closes it; raises when PostgreSQL cannot be reached in time. For readiness: a busy pool
    means every connection is at work, not that the database is gone, and waiting for one
    would take the pool's timeout, longer than a probe waits."""
    import psycopg
    from django.db import connections

    params = connections[alias].get_connection_params()
    params["connect_timeout"] = connect_timeout
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute("SELECT 1")


def is_pool_timeout(exc: BaseException | None) -> bool:
    """Whether this error (or one it was raised from: Django wraps the driver's errors) is the
    pool's timeout: every connection busy, the database itself reachable."""
    from psycopg_pool import PoolTimeout

    for _ in range(8):  # a chain of causes, never a cycle
        if exc is None:
            return False
        if isinstance(exc, PoolTimeout):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


_registered = False


def forget_pools_after_fork() -> None:
    """Registers `_forget_inherited_pools` for every fork of this process (gunicorn's workers,
    Celery's prefork children, anything else). Gunicorn's master and Celery's parent are not
    meant to query the database before forking; this makes it harmless if one ever does."""
    global _registered
    if not _registered:
        os.register_at_fork(after_in_child=_forget_inherited_pools)
        _registered = True

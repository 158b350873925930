"""One transaction per write request, for every API view.

A write (any method but GET, HEAD, OPTIONS) and the audit entries its signals write commit
together or not at all, and a write that fails unexpectedly (a 5xx) leaves nothing behind. A
refusal (4xx) keeps what the code chose to record before refusing (a failure status and
`last_error`, a revoked refresh-token family on reuse), as it always has: those writes are
the point of the refusal. Safe methods run outside a transaction, so long reads and live log
streams hold none.

Write guards (the audit app's idempotency keys) run inside that transaction, after
authentication and the permission checks: a guard may answer instead of the handler (a replay),
and what it stores about the answer commits with the write, or not at all.

When PostgreSQL breaks a deadlock or a serialization conflict by failing this transaction, the
handler runs again from the start (twice at most); if it still cannot get through, the answer is
a 503 with Retry-After (apps.core.api.exceptions), never a 500.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import InterfaceError, OperationalError, connection, transaction
from django.http import HttpResponseBase
from psycopg import errors, pq
from rest_framework.permissions import SAFE_METHODS
from rest_framework.response import Response

from apps.core.api.errors import dependency_down_reason, error_body

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WriteClaim:
    """A guard's decision about one write: `answer` instead of running the handler, or run it
    and call `complete` with the rendered answer when the write is about to commit."""

    answer: HttpResponseBase | None = None
    complete: Callable[[HttpResponseBase], None] | None = None


WriteGuard = Callable[[Any], WriteClaim]

# Registered by the apps that need them (apps.audit: idempotency keys), since core imports no app.
_guards: list[WriteGuard] = []


def register_write_guard(guard: WriteGuard) -> None:
    """Run `guard` on every API write, inside its transaction (called from an app's ready())."""
    if guard not in _guards:
        _guards.append(guard)


class AtomicWritesMixin:
    """Put first in a DRF view's bases; `rolls_back` decides which answers undo the write.

    The transaction wraps the handler only, after `initial()`: authentication, its
    `last_used_at` touch and the rate-limit counters run and commit on their own, so a write
    never holds an API key's row (or, without Redis, a rate-limit row) locked while it works,
    and a failed write is still counted."""

    # Actions that call out over the network for long and write only an audit entry after
    # (each write in its own transaction, by autocommit): no transaction, no write guards, no
    # retry on a lock conflict (which would repeat the calls).
    non_atomic_actions: frozenset[str] = frozenset()

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        name = request.method.lower()
        handler = getattr(self, name, None)
        if getattr(self, "action", None) in self.non_atomic_actions:
            return
        if request.method not in SAFE_METHODS and handler is not None:
            # A view instance serves one request, so wrapping its bound handler is local to it.
            setattr(self, name, self._in_transaction(request, handler))

    def _in_transaction(self, request: Any, handler: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            for attempt in range(LOCK_RETRIES + 1):
                try:
                    return self._attempt(request, handler, args, kwargs)
                except (OperationalError, InterfaceError) as exc:
                    if lock_conflict(exc) and attempt < LOCK_RETRIES:
                        # A little jitter so the two transactions that collided do not meet
                        # again.
                        time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # noqa: S311
                        continue
                    return self._database_failed(exc)
            raise AssertionError("unreachable: the last attempt returns")

        return run

    def _attempt(self, request: Any, handler: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        """One run of the write in its transaction (with the write guards)."""
        with transaction.atomic():
            claims = [guard(request) for guard in _guards]
            answer = next((c.answer for c in claims if c.answer is not None), None)
            if answer is not None:
                return answer
            try:
                response = handler(*args, **kwargs)
            except (OperationalError, InterfaceError):
                raise  # rolled back by the block, then retried or answered 503 by run()
            except Exception as exc:  # noqa: BLE001 - answered here, inside the transaction
                # A refusal raised after a deliberate write keeps it (see the module
                # docstring); DRF would otherwise answer it after the block had rolled back.
                response = self.handle_exception(exc)  # type: ignore[attr-defined]
            if _aborted() or self.rolls_back(request, response):
                transaction.set_rollback(True)
            elif any(c.complete for c in claims) and _storable(response):
                # The answer is rendered now, so what a guard stores (the body, the ETag read
                # back from the row) commits with the write itself.
                response = self.finalize_response(request, response, *args, **kwargs)  # type: ignore[attr-defined]
                response.render()
                for claim in claims:
                    if claim.complete is not None:
                        claim.complete(response)
            return response

    def _database_failed(self, exc: Exception) -> Any:
        if lock_conflict(exc):
            # Lost a deadlock on every attempt; nothing was written: 503 `busy`
            # (apps.core.api.exceptions).
            return self.handle_exception(exc)  # type: ignore[attr-defined]
        # The database failed during the write (gone, restarting, a lock it would not wait
        # for), possibly during the commit itself: the outcome may be unknown here, so the
        # client is told to retry (with its Idempotency-Key it then gets the original answer or
        # a clean run). Logged by type only: the error text can quote the request's values.
        logger.warning(
            "database unavailable during a write",
            extra={
                "event": "database_unavailable",
                "reason": dependency_down_reason(exc),
                "error": type(exc).__name__,
            },
        )
        return _database_unavailable()

    def rolls_back(self, request: Any, response: Any) -> bool:
        return response.status_code >= 500


def _storable(response: HttpResponseBase) -> bool:
    """An answer worth keeping for a retry: not streamed, and not a 429 (a retry should run)."""
    return not response.streaming and response.status_code != 429


def _database_unavailable() -> Response:
    response = Response(
        error_body("database_unavailable", "the database is unavailable; retry the request"),
        status=503,
    )
    response["Retry-After"] = "1"
    return response


def _aborted() -> bool:
    """A database error the exception handler answered (a `DataError` is a 400) leaves
    PostgreSQL's transaction aborted: nothing in it can commit, so it is rolled back."""
    raw = connection.connection
    return raw is not None and raw.info.transaction_status == pq.TransactionStatus.INERROR


# How many times a write that lost a deadlock or serialization conflict is tried again.
LOCK_RETRIES = 2


def lock_conflict(exc: BaseException) -> bool:
    """PostgreSQL failed the transaction to break a deadlock or a serialization conflict: the
    same work run again will get through."""
    cause = exc.__cause__ if isinstance(exc, OperationalError) else None
    return isinstance(cause, errors.DeadlockDetected | errors.SerializationFailure)

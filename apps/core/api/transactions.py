"""One transaction per write request, for every API view.

A write (any method but GET, HEAD, OPTIONS) and the audit entries its signals write commit
together or not at all, and a write that fails unexpectedly (a 5xx) leaves nothing behind. A
refusal (4xx) keeps what the code chose to record before refusing (a failure status and
`last_error`, a revoked refresh-token family on reuse), as it always has: those writes are
the point of the refusal. Safe methods run outside a transaction, so long reads and live log
streams hold none.

When PostgreSQL breaks a deadlock or a serialization conflict by failing this transaction, the
handler runs again from the start (twice at most); if it still cannot get through, the answer is
a 503 with Retry-After (apps.core.api.exceptions), never a 500.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from django.db import OperationalError, connection, transaction
from psycopg import errors, pq
from rest_framework.permissions import SAFE_METHODS


class AtomicWritesMixin:
    """Put first in a DRF view's bases; `rolls_back` decides which answers undo the write.

    The transaction wraps the handler only, after `initial()`: authentication, its
    `last_used_at` touch and the rate-limit counters run and commit on their own, so a write
    never holds an API key's row (or, without Redis, a rate-limit row) locked while it works,
    and a failed write is still counted."""

    def initial(self, request: Any, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        name = request.method.lower()
        handler = getattr(self, name, None)
        if request.method not in SAFE_METHODS and handler is not None:
            # A view instance serves one request, so wrapping its bound handler is local to it.
            setattr(self, name, self._in_transaction(request, handler))

    def _in_transaction(self, request: Any, handler: Callable[..., Any]) -> Callable[..., Any]:
        def once(args: tuple, kwargs: dict, retry: bool) -> Any:
            with transaction.atomic():
                try:
                    response = handler(*args, **kwargs)
                except Exception as exc:  # noqa: BLE001 - answered here, inside the transaction
                    if retry and lock_conflict(exc):
                        raise  # leaves the block, which rolls everything back; tried again
                    # A refusal raised after a deliberate write keeps it (see the module
                    # docstring); DRF would otherwise answer it after the block had rolled back.
                    response = self.handle_exception(exc)  # type: ignore[attr-defined]
                if _aborted() or self.rolls_back(request, response):
                    transaction.set_rollback(True)
                return response

        def run(*args: Any, **kwargs: Any) -> Any:
            for attempt in range(LOCK_RETRIES):
                try:
                    return once(args, kwargs, retry=True)
                except OperationalError as exc:
                    if not lock_conflict(exc):
                        raise
                    # A little jitter so the two transactions that collided do not meet again.
                    time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # noqa: S311
            return once(args, kwargs, retry=False)

        return run

    def rolls_back(self, request: Any, response: Any) -> bool:
        return response.status_code >= 500


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

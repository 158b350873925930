"""One transaction per write request, for every API view.

A write (any method but GET, HEAD, OPTIONS) and the audit entries its signals write commit
together or not at all, and a write that fails unexpectedly (a 5xx) leaves nothing behind. A
refusal (4xx) keeps what the code chose to record before refusing (a failure status and
`last_error`, a revoked refresh-token family on reuse), as it always has: those writes are
the point of the refusal. Safe methods run outside a transaction, so long reads and live log
streams hold none.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction
from psycopg import pq
from rest_framework.permissions import SAFE_METHODS


class AtomicWritesMixin:
    """Put first in a DRF view's bases; `rolls_back` decides which answers undo the write."""

    def dispatch(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if request.method in SAFE_METHODS:
            return super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
        with transaction.atomic():
            response = super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
            if _aborted() or self.rolls_back(request, response):
                transaction.set_rollback(True)
            return response

    def rolls_back(self, request: Any, response: Any) -> bool:
        return response.status_code >= 500


def _aborted() -> bool:
    """A database error the exception handler answered (a `DataError` is a 400) leaves
    PostgreSQL's transaction aborted: nothing in it can commit, so it is rolled back."""
    raw = connection.connection
    return raw is not None and raw.info.transaction_status == pq.TransactionStatus.INERROR

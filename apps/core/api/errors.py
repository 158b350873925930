"""The contract's error body, `{"code": "...", "message": "..."}`, and the exceptions that carry it.

Every error the API returns is built here: by the DRF exception handler for views, and by
`error_response` for middleware and Django's own 404/500 handlers.
"""

from __future__ import annotations

import logging

import kombu.exceptions
import redis.exceptions
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from rest_framework import status
from rest_framework.exceptions import APIException

from apps.core import db_pool, metrics

logger = logging.getLogger(__name__)


def error_body(code: str, message: str, **extra: object) -> dict:
    return {"code": code, "message": message, **extra}


def error_response(status_code: int, code: str, message: str, **extra: object) -> JsonResponse:
    """A plain Django response with the contract's error body, for code outside DRF views."""
    return JsonResponse(error_body(code, message, **extra), status=status_code)


class APIError(APIException):
    """An error with an explicit machine code. Raise it from services or views.

    `APIError(404, "server_not_found", "server not found")`; `retry_after` (seconds) is sent as
    `Retry-After`, as every 503 for a dependency that is down must.
    """

    def __init__(
        self, status_code: int, code: str, message: str, *, retry_after: int | None = None
    ) -> None:
        super().__init__(detail=message, code=code)
        self.status_code = status_code
        self.error_code = code
        self.message = message
        self.retry_after = retry_after


def bad_request(code: str, message: str) -> APIError:
    return APIError(status.HTTP_400_BAD_REQUEST, code, message)


def not_found(code: str = "not_found", message: str = "not found") -> APIError:
    return APIError(status.HTTP_404_NOT_FOUND, code, message)


def conflict(code: str, message: str) -> APIError:
    return APIError(status.HTTP_409_CONFLICT, code, message)


def forbidden(code: str = "forbidden", message: str = "forbidden") -> APIError:
    return APIError(status.HTTP_403_FORBIDDEN, code, message)


# --- A dependency that is down -------------------------------------------------------------------

# Exceptions that mean a dependency is unreachable or not answering (not that our code is
# wrong), with the name the log line gives it. An outage is answered 503 with Retry-After, so
# clients and load balancers back off and retry, instead of a 500 that reads as a bug.
DEPENDENCY_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (redis.exceptions.ConnectionError, "redis"),  # BusyLoadingError (a restart) included
    (redis.exceptions.TimeoutError, "redis"),
    (kombu.exceptions.OperationalError, "broker"),
    (OperationalError, "database"),  # refused, dropped, or a statement/lock timeout
    (InterfaceError, "database"),  # a connection closed under the request
)
# How long a client should wait before retrying: a Redis or PostgreSQL restart, a failover.
DEPENDENCY_RETRY_AFTER_SECONDS = 5
SERVICE_UNAVAILABLE_MESSAGE = "a service the request needs is unavailable; retry shortly"
_PAGE = (
    "<!doctype html><title>Service unavailable</title>"
    "<h1>Service unavailable</h1><p>A service this page needs is unavailable. "
    "Retry in a few seconds.</p>"
)


def dependency_down(exc: BaseException | None) -> str | None:
    """The name of the dependency `exc` says is down ("redis", "broker", "database"), or None
    when `exc` is anything else."""
    for cls, name in DEPENDENCY_ERRORS:
        if isinstance(exc, cls):
            return name
    return None


def dependency_down_reason(exc: BaseException) -> str:
    """`pool_exhausted` when every pooled database connection stayed busy (the database is up:
    the answer is more capacity, not an incident), `unavailable` otherwise. Counted too."""
    if db_pool.is_pool_timeout(exc):
        metrics.db_pool_timeouts.inc()
        return "pool_exhausted"
    return "unavailable"


def log_dependency_down(dependency: str, exc: BaseException) -> None:
    """One warning line per request: which dependency, why, and the exception's type. The
    exception's text is left out (a driver may quote its connection parameters); no traceback,
    since it is an outage and not a bug."""
    reason = dependency_down_reason(exc)
    logger.warning(
        "%s %s",
        dependency,
        reason,
        extra={
            "event": "dependency_unavailable",
            "dependency": dependency,
            "reason": reason,
            "error": type(exc).__name__,
        },
    )


def service_unavailable(*, api: bool) -> HttpResponse:
    """503 with Retry-After: the contract's error body for the API, a short page otherwise.
    Marked as logged, so Django's request logger does not add the traceback again."""
    response: HttpResponse
    if api:
        response = error_response(503, "service_unavailable", SERVICE_UNAVAILABLE_MESSAGE)
    else:
        response = HttpResponse(_PAGE, status=503)
    response["Retry-After"] = str(DEPENDENCY_RETRY_AFTER_SECONDS)
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response

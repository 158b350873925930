"""The one DRF exception handler: every error leaves as `{"code", "message"}`.

Validation errors name the field (`name: This field is required.`) in the message and list every
field under `fields`. A dependency that is down (Redis, the broker, PostgreSQL) is a 503
`service_unavailable` with `Retry-After`. Anything else unexpected is logged with its traceback
and answered with a bare 500, so no stack, SQL or secret ever reaches a client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError, OperationalError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

from apps.core.api.errors import (
    DEPENDENCY_RETRY_AFTER_SECONDS,
    SERVICE_UNAVAILABLE_MESSAGE,
    APIError,
    dependency_down,
    error_body,
    log_dependency_down,
)
from apps.core.api.transactions import lock_conflict

logger = logging.getLogger(__name__)

# DRF exception class -> (machine code) for the generic cases.
_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.NotAuthenticated: "unauthorized",
    exceptions.AuthenticationFailed: "unauthorized",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "rate_limited",
    exceptions.ParseError: "invalid_json",
}


def _flatten(detail: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Yield (field path, message) pairs from DRF's nested error detail."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = "" if key in ("non_field_errors", "__all__") else str(key)
            path = f"{prefix}.{name}" if prefix and name else (name or prefix)
            yield from _flatten(value, path)
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            for item in detail:
                yield prefix, str(item)
        else:
            for index, item in enumerate(detail):
                yield from _flatten(item, f"{prefix}[{index}]")
    else:
        yield prefix, str(detail)


def validation_response(detail: Any) -> Response:
    pairs = list(_flatten(detail))
    message = "; ".join(f"{field}: {text}" if field else text for field, text in pairs)
    fields: dict[str, list[str]] = {}
    for field, text in pairs:
        fields.setdefault(field or "non_field_errors", []).append(text)
    return Response(
        error_body("validation_error", message or "invalid input", fields=fields),
        status=status.HTTP_400_BAD_REQUEST,
    )


# Django/database exceptions -> (status, code, message). Order matters: first match wins.
# A DataError is a value the database cannot store or compare (NUL in a query parameter, an
# out-of-range number) that no validator caught: the client's input, not our failure.
# An IntegrityError is a race services did not turn into a precise 409 themselves.
_DJANGO_ERRORS: tuple[tuple[type[Exception], int, str, str], ...] = (
    (Http404, 404, "not_found", "not found"),
    (DjangoPermissionDenied, 403, "forbidden", "forbidden"),
    (RequestDataTooBig, 413, "payload_too_large", "request body is too large"),
    (DataError, 400, "invalid_input", "a value in the request cannot be stored or compared"),
    (IntegrityError, 409, "conflict", "the request conflicts with the current state"),
)


def _drf_response(exc: exceptions.APIException) -> Response:
    code = next((c for cls, c in _CODES.items() if isinstance(exc, cls)), None)
    response = Response(
        error_body(code or str(exc.get_codes()), _text(exc.detail)), status=exc.status_code
    )
    wait = getattr(exc, "wait", None)  # set by Throttled.__init__; the stubs leave it out
    if isinstance(exc, exceptions.Throttled) and wait:
        response["Retry-After"] = str(int(wait))
    return response


def exception_handler(exc: Exception, context: dict) -> Response:
    # Whatever happens next, a request inside an atomic block must not commit half its work.
    set_rollback()
    if isinstance(exc, APIError):
        response = Response(error_body(exc.error_code, exc.message), status=exc.status_code)
        if exc.retry_after is not None:
            response["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, exceptions.ValidationError):
        return validation_response(exc.detail)
    if isinstance(exc, DjangoValidationError):
        return validation_response(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    if isinstance(exc, exceptions.APIException):
        return _drf_response(exc)
    unavailable = _unavailable(exc)
    if unavailable is not None:
        return unavailable
    for cls, status_code, code, message in _DJANGO_ERRORS:
        if isinstance(exc, cls):
            if isinstance(exc, DataError | IntegrityError):
                # Logged without the request's values: the error text names the column only.
                logger.warning(code, extra={"event": code, "error": type(exc).__name__})
            return Response(error_body(code, message), status=status_code)
    logger.exception("unhandled error", extra={"event": "http_panic"})
    return Response(
        error_body("internal_error", "internal server error"),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )


def _unavailable(exc: Exception) -> Response | None:
    """A 503 with Retry-After for what a retry in a moment gets through: a lock conflict the
    write's retries met again, or a dependency that is down (Redis, the broker, PostgreSQL)."""
    if isinstance(exc, OperationalError) and lock_conflict(exc):
        # PostgreSQL gave up on this transaction to let a concurrent one through (a deadlock
        # or serialization failure), and AtomicWritesMixin's retries met it again: nothing was
        # written, and the same request is expected to succeed in a moment.
        logger.warning("lock_conflict", extra={"event": "lock_conflict"})
        response = Response(
            error_body("busy", "the object is being changed by another request; retry"),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
        response["Retry-After"] = "1"
        return response
    dependency = dependency_down(exc)
    if dependency is None:
        return None
    log_dependency_down(dependency, exc)
    response = Response(
        error_body("service_unavailable", SERVICE_UNAVAILABLE_MESSAGE),
        status=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": str(DEPENDENCY_RETRY_AFTER_SECONDS)},
    )
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


def _text(detail: Any) -> str:
    return "; ".join(text for _, text in _flatten(detail)) or "error"

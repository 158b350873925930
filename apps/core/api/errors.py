"""The contract's error body, `{"code": "...", "message": "..."}`, and the exceptions that carry it.

Every error the API returns is built here: by the DRF exception handler for views, and by
`error_response` for middleware and Django's own 404/500 handlers.
"""

from __future__ import annotations

from django.http import JsonResponse
from rest_framework import status
from rest_framework.exceptions import APIException


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

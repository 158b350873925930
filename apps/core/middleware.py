"""The HTTP edge, applied to every request in one place (order is set in settings.MIDDLEWARE).

Each class does one thing: request id, access log, security headers, client IP, rate limit, body
limit, JSON-only bodies. Rejections are answered with the contract's error body.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django_ratelimit.core import get_usage

from apps.core.api.errors import error_response
from apps.core.logging import request_id_var

Handler = Callable[[HttpRequest], HttpResponse]

access_logger = logging.getLogger("autoglue.access")
logger = logging.getLogger(__name__)

# An incoming id is echoed only if it is short and plain, so it cannot forge log lines.
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_API_PREFIX = "/api/"
# Probes must keep answering however busy a client IP is.
_RATE_LIMIT_EXEMPT = re.compile(r"^/api/v1/(healthz|readyz)/?$")


class RequestIDMiddleware:
    """Accepts a sane `X-Request-ID` or makes one; puts it on the request, logs and response."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request_id
        return response


class AccessLogMiddleware:
    """One `http_request` line per request: method, path, status, bytes, duration, client IP."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        status = response.status_code
        level = logging.ERROR if status >= 500 else logging.INFO
        access_logger.log(
            level,
            "%s %s %s",
            request.method,
            request.path,
            status,
            extra={
                "event": "http_request",
                "method": request.method,
                "path": request.path,
                "status": status,
                "bytes": len(response.content) if not response.streaming else None,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "remote_ip": getattr(request, "client_ip", request.META.get("REMOTE_ADDR")),
            },
        )
        return response


class SecurityHeadersMiddleware:
    """Headers Django's SecurityMiddleware does not set: CSP and Permissions-Policy.

    HTML gets the console policy; everything else (JSON) gets `default-src 'none'`, since an API
    response should never be rendered as a page.
    """

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        content_type = response.get("Content-Type", "")
        if "Content-Security-Policy" not in response:
            if content_type.startswith("text/html"):
                response["Content-Security-Policy"] = settings.CONTENT_SECURITY_POLICY
            else:
                response["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
        response.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        response.setdefault("X-Content-Type-Options", "nosniff")
        response.setdefault("X-Frame-Options", "DENY")
        response.setdefault("Referrer-Policy", settings.SECURE_REFERRER_POLICY)
        return response


def client_ip(request: HttpRequest) -> str:
    """The client's address, trusting exactly TRUSTED_PROXY_COUNT proxies in front of us.

    Each trusted proxy appends the address it saw to X-Forwarded-For, so the client is the entry
    that many places from the right. Anything a client wrote further left is ignored.
    """
    remote = request.META.get("REMOTE_ADDR", "")
    hops = settings.TRUSTED_PROXY_COUNT
    if hops <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [part for part in forwarded if part]
    if len(forwarded) < hops:
        return forwarded[0] if forwarded else remote
    return forwarded[-hops]


class ClientIPMiddleware:
    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.client_ip = client_ip(request)  # type: ignore[attr-defined]
        return self.get_response(request)


def _rate_key(group: str, request: HttpRequest) -> str:
    return request.client_ip  # type: ignore[attr-defined]


class RateLimitMiddleware:
    """RATE_LIMIT requests per client IP per window, counted in the shared cache.

    Over the limit: 429 with `Retry-After` (seconds until the window resets). If the cache is
    unreachable the request is let through and the failure logged: an outage of the counter
    store should not take the API down with it.
    """

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        rate = settings.RATE_LIMIT
        if rate and not _RATE_LIMIT_EXEMPT.match(request.path):
            try:
                usage = get_usage(request, group="global", key=_rate_key, rate=rate, increment=True)
            except Exception:  # any cache backend error: fail open, loudly
                logger.warning(
                    "rate limiter unavailable",
                    exc_info=True,
                    extra={"event": "ratelimit_unavailable"},
                )
                usage = None
            if usage and usage["should_limit"]:
                response = error_response(429, "rate_limited", "too many requests")
                response["Retry-After"] = str(max(1, usage["time_left"]))
                return response
        return self.get_response(request)


class BodyLimitMiddleware:
    """Refuses a declared body over MAX_REQUEST_BODY_BYTES with 413 before reading any of it.

    Bodies without a Content-Length are bounded by DATA_UPLOAD_MAX_MEMORY_SIZE when read.
    """

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return error_response(400, "bad_request", "invalid Content-Length header")
        if length > settings.MAX_REQUEST_BODY_BYTES:
            return error_response(413, "payload_too_large", "request body is too large")
        return self.get_response(request)


def _has_body(request: HttpRequest) -> bool:
    try:
        return int(request.META.get("CONTENT_LENGTH") or 0) > 0
    except ValueError:
        return False


def is_json_content_type(value: str) -> bool:
    media_type = value.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


class JSONContentTypeMiddleware:
    """Under /api/, a request that carries a body must say it is JSON, or gets 415."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (
            request.path.startswith(_API_PREFIX)
            and _has_body(request)
            and not is_json_content_type(request.META.get("CONTENT_TYPE", ""))
        ):
            return error_response(
                415, "unsupported_media_type", "request body must be application/json"
            )
        return self.get_response(request)

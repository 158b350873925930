"""The HTTP edge, applied to every request in one place (order is set in settings.MIDDLEWARE).

Each class does one thing: request id, access log, security headers, client IP, rate limit, body
limit, JSON-only bodies. Rejections are answered with the contract's error body.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

from apps.core import metrics
from apps.core.api.errors import error_response
from apps.core.cache import (
    AUTH_GENERATION_KEY,
    CACHE_UNAVAILABLE,
    auth_generation_seen,
    cache_down,
    cache_failed,
)
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
                response["Content-Security-Policy"] = self.html_policy(request)
            else:
                response["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
        response.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        response.setdefault("X-Content-Type-Options", "nosniff")
        response.setdefault("X-Frame-Options", "DENY")
        response.setdefault("Referrer-Policy", settings.SECURE_REFERRER_POLICY)
        return response

    # The pages whose forms start a Google sign-in: the console's login and allauth's pages.
    SIGN_IN_PAGES = re.compile(r"^/(admin/login/|accounts/)")
    # A plain `http(s)://host[:port]` (and path), so a setting cannot inject another directive.
    ORIGIN = re.compile(r"^(https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?)(?:/[^\s;,']*)?$")

    @classmethod
    def html_policy(cls, request: HttpRequest) -> str:
        """The console policy; on the sign-in pages `form-action` also names the identity
        provider, because their "Sign in with Google" form is answered by a redirect there and
        browsers check every hop of a form's redirects against the page's `form-action`."""
        policy = settings.CONTENT_SECURITY_POLICY
        if not cls.SIGN_IN_PAGES.match(request.path):
            return policy
        origins = sorted(cls.sso_origins())
        if not origins:
            return policy
        return policy.replace("form-action 'self'", "form-action 'self' " + " ".join(origins), 1)

    @classmethod
    def sso_origins(cls) -> set[str]:
        """Origins of the configured OpenID Connect providers (their issuer URL, where Google
        serves the authorization endpoint too) plus CONSOLE_SSO_FORM_ACTION_ORIGINS."""
        providers = getattr(settings, "SOCIALACCOUNT_PROVIDERS", {}).get("openid_connect", {})
        urls = [
            str((app.get("settings") or {}).get("server_url", ""))
            for app in providers.get("APPS", [])
        ]
        urls += list(getattr(settings, "CONSOLE_SSO_FORM_ACTION_ORIGINS", []))
        return {match.group(1) for url in urls if (match := cls.ORIGIN.match(url))}


def client_ip(request: HttpRequest) -> str:
    """The client's address, trusting exactly TRUSTED_PROXY_COUNT proxies in front of us.

    Each trusted proxy appends the address it saw to X-Forwarded-For, so the client is the entry
    that many places from the right. Anything a client wrote further left is ignored. With
    fewer entries than trusted proxies the header did not come through them all, and every
    entry may be the client's own writing: the address is REMOTE_ADDR (fail closed).
    """
    remote = request.META.get("REMOTE_ADDR", "")
    hops = settings.TRUSTED_PROXY_COUNT
    if hops <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    forwarded = [part for part in forwarded if part]
    if len(forwarded) < hops:
        return remote
    return forwarded[-hops]


class ClientIPMiddleware:
    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.client_ip = client_ip(request)  # type: ignore[attr-defined]
        return self.get_response(request)


_RATE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")
# Sign-in and token routes: the strict per-IP budget applies on top of the general one.
_AUTH_PATHS = re.compile(r"^/(api/v1/auth/|admin/login/?$|accounts/)")
_CREDENTIAL_HEADERS = ("HTTP_AUTHORIZATION", "HTTP_X_API_KEY", "HTTP_X_ORG_KEY")
_RATE_PREFIX = "rl:"


def parse_rate(rate: str) -> tuple[int, int] | None:
    """ "100/m" -> (100, 60); "5/10s" -> (5, 10). None for an empty or malformed rate."""
    match = _RATE_RE.match(rate or "")
    if not match:
        return None
    count, multiple, unit = match.groups()
    return int(count), int(multiple or 1) * _RATE_UNITS[unit]


@dataclass(frozen=True)
class RateUsage:
    """One bucket after this request: its limit, what is left, seconds until it resets."""

    limit: int
    count: int
    reset: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    @property
    def exceeded(self) -> bool:
        return self.count > self.limit


class RateHit(NamedTuple):
    """What one round trip counted and read: each bucket's usage, the peeked bucket's, and the
    credential generation's raw value when asked for (None when not asked for, or missing)."""

    usages: list[RateUsage]
    peeked: RateUsage | None
    generation: Any = None


def rate_hit(
    buckets: list[tuple[str, str]],
    *,
    peek: tuple[str, str] | None = None,
    generation: bool = False,
) -> RateHit:
    """Count this request in each (bucket, rate), read the `peek` bucket without counting, and
    with `generation` read the credential generation (apps.core.cache), in one round trip to
    Redis (a pipeline of INCR+EXPIRE per bucket). Fixed windows: the key names the window, so a
    new window starts a new counter."""
    now = time.time()
    plans = []
    for bucket, rate in [*buckets, *([peek] if peek else [])]:
        parsed = parse_rate(rate)
        if parsed is None:
            continue
        limit, period = parsed
        window = int(now // period)
        key = cache.make_key(f"{_RATE_PREFIX}{bucket}:{period}:{window}")
        reset = max(1, int(period - (now % period)))
        plans.append((key, limit, period, reset, peek is not None and bucket == peek[0]))
    if not plans and not generation:
        return RateHit([], None)
    counts, read = _count(plans, AUTH_GENERATION_KEY if generation else None)
    usages, peeked = [], None
    for (_key, limit, _period, reset, is_peek), count in zip(plans, counts, strict=True):
        usage = RateUsage(limit=limit, count=count, reset=reset)
        if is_peek:
            peeked = usage
        else:
            usages.append(usage)
    return RateHit(usages, peeked, read)


def counted_buckets(buckets: list[tuple[str, str]]) -> list[str]:
    """The kind of each bucket `rate_hit` counts (in its order; a disabled limit is skipped),
    for the refusals metric: "ip", "auth", "user", "key"."""
    return [bucket.partition(":")[0] for bucket, rate in buckets if parse_rate(rate) is not None]


def _count(plans: list[tuple[str, int, int, int, bool]], read: str | None) -> tuple[list[int], Any]:
    """The count of each plan, and the cache value under `read` (a key before `make_key`)."""
    raw = getattr(cache, "_cache", None)
    if raw is not None and hasattr(raw, "get_client"):
        client = raw.get_client(plans[0][0] if plans else None, write=True)
        pipe = client.pipeline(transaction=False)
        for key, _limit, period, _reset, is_peek in plans:
            if is_peek:
                pipe.get(key)
            else:
                pipe.incr(key)
                pipe.expire(key, period + 1)
        if read is not None:
            pipe.get(cache.make_key(read))
        results = iter(pipe.execute())
        counts = []
        for _key, _limit, _period, _reset, is_peek in plans:
            value = next(results)
            if not is_peek:
                next(results)  # EXPIRE's answer
            counts.append(int(value or 0))
        # Django's serializer stores integers as their digits, so the raw value is one.
        return counts, (next(results) if read is not None else None)
    # Another cache (the embedded default's database cache): add-then-incr, not atomic.
    counts = []
    for key, _limit, period, _reset, is_peek in plans:
        if is_peek:
            counts.append(int(cache.get(key, version=None, default=0) or 0))
            continue
        cache.add(key, 0, timeout=period + 1)
        try:
            counts.append(int(cache.incr(key)))
        except ValueError:
            cache.set(key, 1, timeout=period + 1)
            counts.append(1)
    return counts, (cache.get(read) if read is not None else None)


def rate_headers(response: HttpResponse, usages: list[RateUsage]) -> None:
    """RateLimit-Limit/Remaining/Reset of the bucket closest to its limit."""
    if not usages:
        return
    tightest = min(usages, key=lambda usage: (usage.remaining, -usage.reset))
    response["RateLimit-Limit"] = str(tightest.limit)
    response["RateLimit-Remaining"] = str(tightest.remaining)
    response["RateLimit-Reset"] = str(tightest.reset)


def _carries_credential(request: HttpRequest) -> bool:
    return any(request.META.get(name, "").strip() for name in _CREDENTIAL_HEADERS)


def _too_many(usage: RateUsage, usages: list[RateUsage], limit: str) -> HttpResponse:
    metrics.rate_limit_refusals.labels(limit).inc()
    response = error_response(429, "rate_limited", "too many requests")
    response["Retry-After"] = str(usage.reset)
    rate_headers(response, usages)
    return response


class RateLimitMiddleware:
    """Per client IP: RATE_LIMIT requests per window, RATE_LIMIT_AUTH on sign-in and token
    routes, and RATE_LIMIT_AUTH_FAILURES answers of 401 (past which a request carrying
    credentials is refused before any key is checked). Per user and per key: the DRF throttle
    (apps.core.api.throttling), which adds its buckets to `request.rate_limit_usages`.

    Counted in the shared cache in one round trip. Over a limit: 429 with `Retry-After`. Every
    API response carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` for the
    bucket nearest its limit. If the cache is unreachable the request is let through and the
    failure logged: an outage of the counter store should not take the API down with it.
    """

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path
        if _RATE_LIMIT_EXEMPT.match(path):
            return self.get_response(request)
        ip = request.client_ip  # type: ignore[attr-defined]
        buckets = [(f"ip:{ip}", settings.RATE_LIMIT)]
        if _AUTH_PATHS.match(path):
            buckets.append((f"auth:{ip}", settings.RATE_LIMIT_AUTH))
        credential = _carries_credential(request)
        peek = (f"authfail:{ip}", settings.RATE_LIMIT_AUTH_FAILURES) if credential else None
        usages, failures = self._count(request, buckets, peek, credential)
        for bucket, usage in zip(counted_buckets(buckets), usages, strict=False):
            if usage.exceeded:
                return _too_many(usage, usages, bucket)
        if failures is not None and failures.count >= failures.limit:
            return _too_many(failures, usages, "auth_failures")
        request.rate_limit_usages = usages  # type: ignore[attr-defined]
        response = self.get_response(request)
        if response.status_code == 401 and credential and peek is not None and not cache_down():
            with contextlib.suppress(Exception):
                rate_hit([peek])
        if path.startswith(_API_PREFIX):
            rate_headers(response, getattr(request, "rate_limit_usages", usages))
        return response

    @staticmethod
    def _count(
        request: HttpRequest,
        buckets: list[tuple[str, str]],
        peek: tuple[str, str] | None,
        credential: bool,
    ) -> tuple[list[RateUsage], RateUsage | None]:
        if cache_down():  # failed a moment ago (and said so): fail open without waiting again
            request.auth_generation = None  # type: ignore[attr-defined]
            return [], None
        try:
            # A request with a credential also reads the credential generation, in the same
            # round trip: authentication checks what it remembers against it.
            usages, failures, generation = rate_hit(buckets, peek=peek, generation=credential)
        except Exception as exc:  # any cache backend error: fail open, loudly
            # An outage is one line per request, without a traceback; anything else keeps it.
            logger.warning(
                "rate limiter unavailable",
                exc_info=not isinstance(exc, CACHE_UNAVAILABLE),
                extra={"event": "ratelimit_unavailable", "error": type(exc).__name__},
            )
            cache_failed()
            request.auth_generation = None  # type: ignore[attr-defined]
            return [], None
        if credential:
            request.auth_generation = auth_generation_seen(generation)  # type: ignore[attr-defined]
        return usages, failures


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

"""The HTTP metrics: duration by method, route pattern and status class, and requests in flight.

Async-capable: under ASGI it awaits the next handler directly (no thread hop of its own), and
under WSGI it is an ordinary callable. Outermost in MIDDLEWARE, so refusals by later middleware
(429, 413, 415) are counted too. The route is the resolved URL pattern, never the path.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from apps.core import metrics

# Credential headers and the label their refusal is counted under.
_CREDENTIALS = (
    ("HTTP_X_ORG_KEY", "org_key"),
    ("HTTP_X_API_KEY", "api_key"),
    ("HTTP_AUTHORIZATION", "bearer"),
)


def route_of(request: HttpRequest) -> str:
    """The URL pattern that answered ("unmatched" when none did: a 404, or a refusal before
    routing)."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    return match.route or match.view_name or "unmatched"


def _observe(request: HttpRequest, response: HttpResponseBase, started: float) -> None:
    status = response.status_code
    metrics.http_request_duration.labels(
        metrics.method_label(request.method or ""), route_of(request), metrics.status_class(status)
    ).observe(time.perf_counter() - started)
    if status == 401:
        for header, label in _CREDENTIALS:
            if request.META.get(header, "").strip():
                metrics.failed_credentials.labels(label).inc()
                break


class MetricsMiddleware:
    """Records every request's duration and status class; see the module docstring."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        started = time.perf_counter()
        metrics.http_requests_in_flight.inc()
        try:
            response = self.get_response(request)
        finally:
            metrics.http_requests_in_flight.dec()
        _observe(request, response, started)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        metrics.http_requests_in_flight.inc()
        try:
            response = await self._next(request)
        finally:
            metrics.http_requests_in_flight.dec()
        _observe(request, response, started)
        return response

    @property
    def _next(self) -> Callable[[HttpRequest], Awaitable[HttpResponseBase]]:
        return self.get_response

"""The HTTP metrics: duration by method, route pattern and status class, and requests in flight.

Async-capable: under ASGI it awaits the next handler directly (no thread hop of its own), and
under WSGI it is an ordinary callable. Outermost in MIDDLEWARE, so refusals by later middleware
(429, 413, 415) are counted too. The route is the resolved URL pattern, never the path.
"""

from __future__ import annotations

import functools
import re
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


# Probes and scrapes are not traffic: they come every few seconds from the kubelet and
# Prometheus, would dilute the 5xx ratio and the latency quantiles, and a slow readyz would look
# like a slow API. They are not observed at all.
_UNOBSERVED = re.compile(r"^/(metrics|api/v1/(healthz|readyz))/?$")


_GROUP = re.compile(r"\(\?P<(\w+)>(?:[^()]|\([^()]*\))*\)")


@functools.lru_cache(maxsize=1024)
def route_template(route: str) -> str:
    """A URL pattern as people write it: `api/v1/^servers/(?P<pk>[^/]+)/?$` is
    `/api/v1/servers/{pk}`. Cached: the set of patterns is fixed."""
    text = _GROUP.sub(lambda m: "{" + m.group(1) + "}", route)
    text = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", text)  # path() converters
    text = text.replace("^", "").replace("/?$", "").replace("$", "").replace("\\", "")
    return "/" + text.lstrip("/")


def route_of(request: HttpRequest) -> str:
    """The URL pattern that answered ("unmatched" when none did: a 404, or a refusal before
    routing)."""
    match = getattr(request, "resolver_match", None)
    if match is None or not match.route:
        return "unmatched"
    return route_template(match.route)


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
        if _UNOBSERVED.match(request.path_info):
            return self.get_response(request)
        started = time.perf_counter()
        metrics.http_requests_in_flight.inc()
        try:
            response = self.get_response(request)
        finally:
            metrics.http_requests_in_flight.dec()
        _observe(request, response, started)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        if _UNOBSERVED.match(request.path_info):
            return await self._next(request)
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

"""Django-level error pages: JSON under /api/, plain pages elsewhere.

DRF views answer their own errors; these catch what happens outside them (unknown paths,
middleware crashes, every page outside the API), so no HTML error page is ever served under
/api/, and a dependency that is down is a 503 with Retry-After everywhere, never a 500.
"""

from __future__ import annotations

import sys

from django.http import HttpRequest, HttpResponse
from django.views.csrf import csrf_failure as default_csrf_failure
from django.views.decorators.csrf import csrf_exempt
from django.views.defaults import page_not_found, server_error

from apps.core.api.errors import (
    dependency_down,
    error_response,
    log_dependency_down,
    service_unavailable,
)


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or request.path.startswith("/.well-known/")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return error_response(404, "not_found", "not found")
    return page_not_found(request, exception)  # type: ignore[arg-type]


def internal_error(request: HttpRequest) -> HttpResponse:
    # Django calls handler500 inside its `except` block, so the exception is at hand here.
    exc = sys.exc_info()[1]
    dependency = dependency_down(exc)
    if exc is not None and dependency is not None:
        log_dependency_down(dependency, exc)
        return service_unavailable(api=_is_api(request))
    if _is_api(request):
        return error_response(500, "internal_error", "internal server error")
    return server_error(request)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_response(400, "bad_request", "bad request")


@csrf_exempt
def api_not_found(request: HttpRequest) -> HttpResponse:
    """Catch-all for /api/ paths no route matched, so even DEBUG answers JSON. Exempt from CSRF
    like every API view (none of them reads the session): an unknown path is a 404 for every
    method, never Django's HTML "CSRF verification failed" page."""
    return error_response(404, "not_found", "not found")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: JSON under /api/ (should a non-DRF view there ever check CSRF),
    Django's page elsewhere (the admin and console forms)."""
    if _is_api(request):
        return error_response(403, "csrf_failed", "CSRF verification failed")
    return default_csrf_failure(request, reason)

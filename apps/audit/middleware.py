"""Request-level piece of the audit app: the audit context of each request (its place is set in
settings.MIDDLEWARE). Idempotency keys run inside each write's transaction instead
(apps.audit.idempotency)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from apps.audit import context, services

Handler = Callable[[HttpRequest], HttpResponse]
logger = logging.getLogger(__name__)
_SSO_CALLBACK = re.compile(r"^/api/v1/auth/(?P<provider>[^/]{1,32})/callback/?$")


class AuditContextMiddleware:
    """Binds the request (its principal is read when an entry is written), client IP, user
    agent and request id to every audit entry written while it is handled."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        ctx = context.AuditContext(
            request=request,
            ip=getattr(request, "client_ip", "") or request.META.get("REMOTE_ADDR", ""),
            user_agent=request.headers.get("User-Agent", "")[:512],
            request_id=getattr(request, "request_id", ""),
        )
        with context.bound(ctx):
            response = self.get_response(request)
            match = _SSO_CALLBACK.match(request.path)
            if match and response.status_code >= 400:
                # A refused SSO sign-in (bad state, unverified e-mail, foreign domain...): the
                # callback answers an error and nothing else in the flow leaves a trace.
                services.audit_sign_in_failed(
                    method=match["provider"], reason=_error_code(response)
                )
            return response


def _error_code(response: HttpResponse) -> str:
    try:
        return str(json.loads(response.content).get("code", ""))
    except (ValueError, AttributeError):
        return str(response.status_code)

"""Request-level pieces of the audit app: the audit context of each request, and idempotency
keys on API POSTs (the order is set in settings.MIDDLEWARE)."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from django.http import HttpRequest, HttpResponse
from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import APIException
from rest_framework.request import Request
from rest_framework.settings import api_settings

from apps.audit import context, idempotency, services
from apps.core.api.errors import error_response

if TYPE_CHECKING:
    from apps.audit.models import IdempotencyRecord

Handler = Callable[[HttpRequest], HttpResponse]
logger = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
_MAX_KEY_LENGTH = 255
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


def _principal(request: HttpRequest) -> str | None:
    """Who sent the request, as authentication will decide it; None when nobody (or nobody
    valid) did: such a request is not bound to a key and runs as usual."""
    from apps.core.tenancy import OrgKeyPrincipal

    # Tests authenticate with DRF's force_authenticate, which the view would honour too.
    user = getattr(request, "_force_auth_user", None)
    auth = getattr(request, "_force_auth_token", None)
    if user is None:
        drf_request = Request(request)
        # APISettings imports the dotted paths on access; the stubs type the raw setting.
        authenticator_classes = cast(
            "list[type[BaseAuthentication]]", api_settings.DEFAULT_AUTHENTICATION_CLASSES
        )
        for authenticator_class in authenticator_classes:
            try:
                result = authenticator_class().authenticate(drf_request)
            except APIException:
                return None
            if result is not None:
                user, auth = result
                break
    if isinstance(auth, OrgKeyPrincipal):
        return f"org_key:{auth.key_id}"
    if user is not None and getattr(user, "pk", None):
        return f"user:{user.pk}"
    return None


def _still_member(principal: str, org: str) -> bool:
    """Whether a user who stored a response in organization `org` (the X-Org-ID they sent)
    still belongs to it. Org keys are bound to their organization, and a revoked one no longer
    authenticates; an unparsable header never stored an answer from an organization."""
    if not org or not principal.startswith("user:"):
        return True
    from apps.orgs.models import Membership

    try:
        org_id = uuid.UUID(org)
    except ValueError:
        return True
    user_id = principal.removeprefix("user:")
    return Membership.objects.filter(user_id=user_id, organization_id=org_id).exists()


def _replay(record: Any) -> HttpResponse:
    response = HttpResponse(
        idempotency.idempotency_stored_body(record=record), status=record.status_code
    )
    for name, value in (record.headers or {}).items():
        response[name] = value
    response["Idempotent-Replayed"] = "true"
    return response


class IdempotencyMiddleware:
    """An API POST with a non-empty `Idempotency-Key` runs at most once per principal and key
    (apps.audit.idempotency). Without the header (or with an empty one, as generated clients
    send) nothing changes."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
        if request.method != "POST" or not key or not request.path.startswith("/api/"):
            return self.get_response(request)
        if len(key) > _MAX_KEY_LENGTH or not key.isprintable():
            return error_response(
                400,
                "invalid_idempotency_key",
                f"{IDEMPOTENCY_HEADER}: at most {_MAX_KEY_LENGTH} printable characters",
            )
        principal = _principal(request)
        if principal is None:
            return self.get_response(request)
        org = request.headers.get("X-Org-ID", "").strip()
        begin = idempotency.idempotency_begin(
            scope=idempotency.scope_digest(principal=principal, org=org, key=key),
            request_hash=idempotency.request_fingerprint(
                method=request.method,
                path=request.path,
                query=request.META.get("QUERY_STRING", ""),
                body=request.body,
            ),
        )
        if begin.outcome == "replay":
            if not _still_member(principal, org):
                # The stored answer is the organization's: someone who has left it gets the
                # tenancy layer's refusal (never a second run of the request).
                return error_response(
                    403, "org_forbidden", "you are not a member of this organization"
                )
            return _replay(begin.record)
        if begin.outcome == "mismatch":
            return error_response(
                422,
                "idempotency_key_reused",
                f"{IDEMPOTENCY_HEADER}: already used for a different request",
            )
        if begin.outcome == "in_flight":
            response: HttpResponse = error_response(
                409,
                "idempotency_key_in_flight",
                f"{IDEMPOTENCY_HEADER}: the first request with this key is still running",
            )
            response["Retry-After"] = "1"
            return response
        # "run" always carries the row idempotency_begin created for this request.
        record = cast("IdempotencyRecord", begin.record)
        try:
            response = self.get_response(request)
        except BaseException:
            idempotency.idempotency_release(record=record)
            raise
        if response.status_code >= 500 or response.status_code == 429 or response.streaming:
            idempotency.idempotency_release(record=record)
            return response
        headers = {
            name: response[name] for name in idempotency.REPLAYED_HEADERS if name in response
        }
        idempotency.idempotency_complete(
            record=record, status_code=response.status_code, headers=headers, body=response.content
        )
        return response

"""Idempotency keys: a POST repeated with the same `Idempotency-Key` by the same principal gets
the first response back instead of running again (so a retried Terraform apply never creates
twice). Same key with a different body: 422. Same key while the first is still running: 409.
Keys are kept IDEMPOTENCY_KEY_HOURS (24 h).

`idempotency_guard` runs inside the write's own transaction (apps.core.api.transactions), after
authentication and the view's permission checks, so:
- the stored answer commits with the write or not at all: a write whose commit was lost (the
  database restarted) leaves no record and a retry runs cleanly; one whose commit landed but
  whose answer was lost leaves its record, and a retry gets the original answer;
- the key is held while the first request runs by a transaction-scoped advisory lock, which
  PostgreSQL releases with the transaction (commit, rollback, or the connection dying), so a
  crashed request never leaves its key stuck;
- a replay goes to a caller who may still make the request now: one demoted or removed since is
  refused exactly as the request itself would be.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, HttpResponseBase
from django.http.request import RawPostDataException
from django.utils import timezone
from rest_framework.response import Response

from apps.audit.models import IdempotencyRecord
from apps.core.api.errors import error_body
from apps.core.api.transactions import WriteClaim
from apps.core.permissions import Perm, role_allows
from apps.core.tenancy import OrgKeyPrincipal, resolved_tenant

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# Response headers worth replaying; the rest (request id, security headers) are per response.
REPLAYED_HEADERS = ("Content-Type", "Location", "Cache-Control", "ETag", "Link")
# First half of the two-integer advisory lock key: keeps these locks apart from the project's
# other advisory locks (DNS zones, signing keys, schedules), which use one bigint.
_LOCK_NAMESPACE = 0x1D3A


def request_fingerprint(*, method: str, path: str, query: str, body: bytes) -> str:
    """The request a key was first used for. JSON bodies are compared by content, so a client
    that re-serialises the same object in another key order is still making the same request."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
        payload = canonical.encode()
    except (ValueError, UnicodeDecodeError, RecursionError):
        # Not JSON, or nested past the decoder's limit: the parser refuses it with a 400 later;
        # the raw bytes still identify the request.
        payload = body
    digest = hashlib.sha256()
    for part in (method.encode(), path.rstrip("/").encode(), query.encode(), payload):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def scope_digest(*, principal: str, org: str, key: str) -> str:
    return hashlib.sha256(f"{principal}\n{org}\n{key}".encode()).hexdigest()


def _principal(request: Any) -> str | None:
    """Who sent the request, as authentication decided; None for nobody (not bound to a key)."""
    if isinstance(request.auth, OrgKeyPrincipal):
        return f"org_key:{request.auth.key_id}"
    user = request.user
    if user is not None and getattr(user, "is_authenticated", False) and user.pk:
        return f"user:{user.pk}"
    return None


def _error(status: int, code: str, message: str) -> Response:
    return Response(error_body(code, message), status=status)


def idempotency_guard(request: Any) -> WriteClaim:
    """The write guard for API POSTs (registered by AuditConfig.ready()); runs in the write's
    transaction. Without the header, with an empty one (generated clients send empty headers),
    or for an anonymous request, it does nothing."""
    key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
    if request.method != "POST" or not key:
        return WriteClaim()
    if len(key) > MAX_KEY_LENGTH or not key.isprintable():
        return WriteClaim(
            answer=_error(
                400,
                "invalid_idempotency_key",
                f"{IDEMPOTENCY_HEADER}: at most {MAX_KEY_LENGTH} printable characters",
            )
        )
    principal = _principal(request)
    if principal is None:
        return WriteClaim()
    # The organization the request runs in, as the permission checks resolved it: not the raw
    # X-Org-ID header, which may be absent (a one-membership user) or spelled differently.
    tenant = resolved_tenant(request)
    organization = tenant.organization if tenant is not None else None
    role = tenant.role if tenant is not None else ""
    scope = scope_digest(
        principal=principal, org=str(organization.pk) if organization is not None else "", key=key
    )
    request_hash = request_fingerprint(
        method=request.method,
        path=request.path,
        query=request.META.get("QUERY_STRING", ""),
        body=_raw_body(request),
    )
    if not _hold(scope):
        response = _error(
            409,
            "idempotency_key_in_flight",
            f"{IDEMPOTENCY_HEADER}: the first request with this key is still running",
        )
        response["Retry-After"] = "1"
        return WriteClaim(answer=response)
    record = _stored(scope)
    if record is not None and record.request_hash != request_hash:
        return WriteClaim(
            answer=_error(
                422,
                "idempotency_key_reused",
                f"{IDEMPOTENCY_HEADER}: already used for a different request",
            )
        )
    if record is not None and _lost_secrets(record, role):
        return WriteClaim(
            answer=_error(
                403,
                "forbidden",
                "your role in this organization may no longer read the secrets in the answer "
                "stored for this key",
            )
        )
    if record is not None:
        return WriteClaim(answer=_replay(record))

    def complete(response: HttpResponseBase) -> None:
        idempotency_store(
            scope=scope,
            request_hash=request_hash,
            response=response,
            role=role,
            organization=organization,
        )

    return WriteClaim(complete=complete)


def _raw_body(request: Any) -> bytes:
    try:
        return bytes(request._request.body)
    except RawPostDataException:
        # The body was already read as a stream (nothing in the API does so before the view:
        # it only takes JSON); its parsed content then identifies the request.
        return json.dumps(request.data, sort_keys=True, default=str).encode()


def lock_key(scope: str) -> tuple[int, int]:
    """The advisory lock that holds a key while its first request runs."""
    return _LOCK_NAMESPACE, int.from_bytes(bytes.fromhex(scope[:8]), "big", signed=True)


def _hold(scope: str) -> bool:
    """Hold the key until this transaction ends, or say another request holds it now."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", list(lock_key(scope)))
        row = cursor.fetchone()
    return bool(row and row[0])


def _stored(scope: str) -> IdempotencyRecord | None:
    """The answer stored under the key, unless it is past IDEMPOTENCY_KEY_HOURS (then the key
    starts over). A row without an answer was reserved by an earlier version, which committed
    the reservation before running: it holds nothing."""
    cutoff = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
    return IdempotencyRecord.objects.filter(
        scope=scope, completed_at__isnull=False, created_at__gt=cutoff
    ).first()


def _lost_secrets(record: IdempotencyRecord, role: str) -> bool:
    """Whether the stored answer carries secrets its role could read and the present role
    cannot (an admin's cluster create with join secrets, repeated after a demotion to member)."""
    return (
        bool(record.body_secret)
        and role_allows(record.role, Perm.REVEAL_SECRETS)
        and not role_allows(role, Perm.REVEAL_SECRETS)
    )


def idempotency_store(
    *,
    scope: str,
    request_hash: str,
    response: HttpResponseBase,
    role: str = "",
    organization: Any = None,
) -> None:
    """Store the answer of the request that held the key, in that request's transaction, with
    the organization it ran in (its records go when it does) and the principal's role there
    (`role`, "" outside one). A create that answers a secret (`no-store`: a cluster's join
    secrets, a new key) is kept encrypted; any other `no-store` answer is a secret read (a
    reveal) and is not stored at all, so a repeat reads again, is audited again, and finds the
    secret gone once it is deleted."""
    headers = {name: response[name] for name in REPLAYED_HEADERS if name in response}
    secret = "no-store" in headers.get("Cache-Control", "")
    if secret and response.status_code != 201:
        return
    text = response.content.decode("utf-8", errors="replace")  # type: ignore[attr-defined]
    now = timezone.now()
    IdempotencyRecord.objects.update_or_create(
        scope=scope,
        defaults={
            "request_hash": request_hash,
            "created_at": now,
            "completed_at": now,
            "status_code": response.status_code,
            "headers": headers,
            "body": "" if secret else text,
            "body_secret": text if secret else "",
            "role": role,
            "organization": organization,
        },
    )


def idempotency_stored_body(*, record: IdempotencyRecord) -> str:
    return record.body_secret or record.body


def _replay(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(idempotency_stored_body(record=record), status=record.status_code)
    for name, value in (record.headers or {}).items():
        response[name] = value
    response["Idempotent-Replayed"] = "true"
    return response


def idempotency_prune(*, now: Any = None) -> int:
    """Forget keys older than IDEMPOTENCY_KEY_HOURS."""
    cutoff = (now or timezone.now()) - timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted

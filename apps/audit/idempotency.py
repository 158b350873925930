"""Idempotency keys: a POST repeated with the same `Idempotency-Key` by the same principal gets
the first response back instead of running again (so a retried Terraform apply never creates
twice). Same key with a different body: 422. Same key while the first is still running: 409.
Keys are kept IDEMPOTENCY_KEY_HOURS (24 h)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.audit.models import IdempotencyRecord

_TABLE = IdempotencyRecord._meta.db_table
# Response headers worth replaying; the rest (request id, security headers) are per response.
REPLAYED_HEADERS = ("Content-Type", "Location", "Cache-Control", "ETag", "Link")


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


@dataclass(frozen=True)
class Begin:
    """What to do with a request: run it (`record` is ours), replay `record`, or refuse."""

    outcome: str  # "run", "replay", "mismatch", "in_flight"
    record: IdempotencyRecord | None = None


def idempotency_begin(*, scope: str, request_hash: str) -> Begin:
    """Reserve the key for this request, or say why not. The reservation commits at once (it
    runs outside the request's work), so a concurrent repeat sees it and answers 409."""
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
                INSERT INTO {_TABLE} (id, scope, request_hash, created_at, headers, body,
                                      body_secret)
                VALUES (gen_random_uuid(), %s, %s, %s, '{{}}'::jsonb, '', '')
                ON CONFLICT (scope) DO NOTHING RETURNING id
                """,  # noqa: S608 - the table name is ours, values are parameters
            [scope, request_hash, now],
        )
        row = cursor.fetchone()
    if row is not None:
        return Begin("run", IdempotencyRecord.objects.get(pk=row[0]))
    existing = IdempotencyRecord.objects.filter(scope=scope).first()
    if existing is None:  # expired and pruned between the two statements: try once more
        return idempotency_begin(scope=scope, request_hash=request_hash)
    expired = existing.created_at <= now - timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
    stuck = existing.completed_at is None and existing.created_at <= now - timedelta(
        seconds=settings.IDEMPOTENCY_IN_FLIGHT_SECONDS
    )
    if expired or stuck:
        # An old key starts over; so does one whose first request never finished (its process
        # died). The conditional update lets exactly one of several repeats take it over.
        taken = IdempotencyRecord.objects.filter(
            pk=existing.pk, created_at=existing.created_at
        ).update(
            created_at=now,
            request_hash=request_hash,
            completed_at=None,
            status_code=None,
            headers={},
            body="",
        )
        if taken:
            return Begin("run", IdempotencyRecord.objects.get(pk=existing.pk))
        return Begin("in_flight", existing)
    if existing.request_hash != request_hash:
        return Begin("mismatch", existing)
    if existing.completed_at is None:
        return Begin("in_flight", existing)
    return Begin("replay", existing)


def idempotency_complete(
    *, record: IdempotencyRecord, status_code: int, headers: dict[str, str], body: bytes
) -> None:
    """Store the response of the request that held the key. A response that carries a secret
    (`no-store`) is kept encrypted."""
    text = body.decode("utf-8", errors="replace")
    secret = "no-store" in headers.get("Cache-Control", "")
    record.status_code = status_code
    record.headers = headers
    record.body = "" if secret else text
    record.body_secret = text if secret else ""
    record.completed_at = timezone.now()
    record.save(update_fields=["status_code", "headers", "body", "body_secret", "completed_at"])


def idempotency_release(*, record: IdempotencyRecord) -> None:
    """Give the key back (the request failed on our side): a retry may run it again."""
    IdempotencyRecord.objects.filter(pk=record.pk, completed_at__isnull=True).delete()


def idempotency_stored_body(*, record: IdempotencyRecord) -> str:
    return record.body_secret or record.body


def idempotency_prune(*, now: Any = None) -> int:
    """Forget keys older than IDEMPOTENCY_KEY_HOURS."""
    cutoff = (now or timezone.now()) - timedelta(hours=settings.IDEMPOTENCY_KEY_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted

"""Sweepers: expired keys, spent refresh tokens, old job records, and VACUUM (ANALYZE).

Platform house-keeping across every organization, so the queries below are deliberately not
tenant-scoped. Deletes go in small batches, each its own short statement in autocommit, so no
table is locked for long and a sweep interrupted half-way simply continues at the next tick.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from psycopg import sql

from apps.accounts.models import APIKey, RefreshToken
from apps.accounts.services import api_key_cache_clear
from apps.core.events import event_publish
from apps.jobs.models import JobLog, JobRun
from apps.maintenance.postgres import Target
from apps.maintenance.selectors import expiring_soon

Progress = Callable[[str], None]
# Called between batches; returns True when the sweep should stop for now (its time is up).
ShouldStop = Callable[[], bool]
# Expiry warnings listed in a job's log; the rest are counted.
WARNINGS_LOGGED = 100


def _noop(_: str) -> None:
    return None


def _never() -> bool:
    return False


def _batch_size() -> int:
    return max(int(settings.MAINTENANCE_DELETE_BATCH_SIZE), 1)


def _delete_in_batches(queryset: QuerySet, should_stop: ShouldStop) -> tuple[int, bool]:
    """Delete the queryset's rows a batch of primary keys at a time; (rows, finished)."""
    model, deleted = queryset.model, 0
    while True:
        ids = list(queryset.values_list("pk", flat=True)[: _batch_size()])
        if not ids:
            return deleted, True
        deleted += model._default_manager.filter(pk__in=ids).delete()[1].get(model._meta.label, 0)
        if len(ids) < _batch_size():
            return deleted, True
        if should_stop():
            return deleted, False


# --- expiry warnings ----------------------------------------------------------------------------


def keys_expiring(
    *, now: datetime | None = None, within_days: int | None = None, organization_id: Any = None
) -> QuerySet[APIKey]:
    """Live (unrevoked, not yet expired), non-ephemeral keys that expire within the window,
    soonest first; an organization's org keys when `organization_id` is given, else every key
    (user and org) for the sweeper's log."""
    now = now or timezone.now()
    days = settings.EXPIRY_WARNING_DAYS if within_days is None else within_days
    queryset = APIKey.objects.filter(expiring_soon(now=now, within_days=days), is_ephemeral=False)
    if organization_id is not None:
        queryset = queryset.filter(scope=APIKey.Scope.ORG, organization_id=organization_id)
    return queryset.select_related("organization", "user").order_by("expires_at", "id")


def _describe(key: APIKey) -> str:
    owner = (
        f"org {key.organization.name}"
        if key.scope == APIKey.Scope.ORG and key.organization
        else f"user {key.user.primary_email if key.user else '?'}"
    )
    label = f"'{key.name}' " if key.name else ""
    return f"{owner}: key {label}({key.prefix}) expires {key.expires_at:%Y-%m-%d %H:%M} UTC"


def _announce_expiring(org_keys: QuerySet, should_stop: ShouldStop) -> None:
    """Publish every expiring org key, a batch at a time (heard by the webhooks outbox:
    api_key.expiring, once per key and expiry)."""
    org_keys = org_keys.order_by("pk")
    last = None
    while True:
        page = org_keys if last is None else org_keys.filter(pk__gt=last)
        batch = list(page[: _batch_size()])
        if batch:
            event_publish("api_key.expiring", keys=batch)
            last = batch[-1].pk
        if len(batch) < _batch_size() or should_stop():
            return


# --- sweepers -----------------------------------------------------------------------------------


def api_keys_sweep(
    *, now: datetime | None = None, progress: Progress = _noop, should_stop: ShouldStop = _never
) -> dict[str, int]:
    """Revoke expired user and org keys (they stop working at expiry anyway; revoking makes the
    state explicit and drops cached authentications), purge ephemeral automation keys
    EPHEMERAL_KEY_GRACE_HOURS after they expired or were revoked, and log the keys that expire
    within EXPIRY_WARNING_DAYS."""
    now = now or timezone.now()
    revoked = 0
    expired = APIKey.objects.filter(
        is_ephemeral=False, revoked_at__isnull=True, expires_at__lte=now
    )
    while True:
        with transaction.atomic():
            # Locked, so a person revoking one of them meanwhile waits and then finds it revoked
            # (no second event); the revocation and its `api_key.revoked` events commit together.
            batch = list(
                expired.select_for_update(skip_locked=True).order_by("pk")[: _batch_size()]
            )
            if not batch:
                break
            revoked += APIKey.objects.filter(pk__in=[key.pk for key in batch]).update(
                revoked_at=now, updated_at=now
            )
            event_publish("api_key.revoked_expired", keys=batch)
        for key in batch:
            api_key_cache_clear(public_id=key.public_id)
        if len(batch) < _batch_size() or should_stop():
            break
    grace = now - timedelta(hours=settings.EPHEMERAL_KEY_GRACE_HOURS)
    purged, _ = _delete_in_batches(
        APIKey.objects.filter(is_ephemeral=True).filter(
            Q(expires_at__lt=grace) | Q(revoked_at__lt=grace)
        ),
        should_stop,
    )
    expiring = keys_expiring(now=now)
    count = expiring.count()
    progress(
        f"revoked {revoked} expired key(s); purged {purged} ephemeral key(s) past their "
        f"{settings.EPHEMERAL_KEY_GRACE_HOURS} h grace; {count} key(s) expire within "
        f"{settings.EXPIRY_WARNING_DAYS} days"
    )
    for key in expiring[:WARNINGS_LOGGED]:
        progress(f"expiring soon: {_describe(key)}")
    _announce_expiring(expiring.filter(organization__isnull=False), should_stop)
    if count > WARNINGS_LOGGED:
        progress(f"... and {count - WARNINGS_LOGGED} more")
    return {"revoked": revoked, "ephemeral_purged": purged, "expiring_soon": count}


def refresh_tokens_purge(
    *, now: datetime | None = None, progress: Progress = _noop, should_stop: ShouldStop = _never
) -> dict[str, int]:
    """Delete refresh tokens that expired or were revoked more than REFRESH_TOKEN_GRACE_HOURS
    ago. Used but live tokens stay: presenting one again is how reuse is detected."""
    now = now or timezone.now()
    grace = now - timedelta(hours=settings.REFRESH_TOKEN_GRACE_HOURS)
    purged, finished = _delete_in_batches(
        RefreshToken.objects.filter(Q(expires_at__lt=grace) | Q(revoked_at__lt=grace)),
        should_stop,
    )
    progress(f"purged {purged} expired or revoked refresh token(s)")
    return {"purged": purged, "finished": int(finished)}


def job_records_purge(
    *, now: datetime | None = None, progress: Progress = _noop, should_stop: ShouldStop = _never
) -> dict[str, int]:
    """Delete finished job runs (with their logs) and log lines older than JOB_RETENTION_DAYS.
    Queued or running runs are never touched, however old."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.JOB_RETENTION_DAYS)
    final = list(JobRun.FINAL_STATUSES)
    logs, logs_done = _delete_in_batches(
        JobLog.objects.filter(created_at__lt=cutoff, job__status__in=final).order_by("id"),
        should_stop,
    )
    runs, runs_done = 0, False
    if logs_done:
        runs, runs_done = _delete_in_batches(
            JobRun.objects.filter(status__in=final, finished_at__lt=cutoff).order_by("finished_at"),
            should_stop,
        )
    progress(
        f"deleted {runs} job run(s) and {logs} log chunk(s) older than "
        f"{settings.JOB_RETENTION_DAYS} days"
        + ("" if runs_done else " (time is up; the next sweep continues)")
    )
    return {"runs_deleted": runs, "logs_deleted": logs, "finished": int(runs_done)}


def tables_vacuum(*, progress: Progress = _noop) -> dict[str, Any]:
    """VACUUM (ANALYZE) the busy tables (MAINTENANCE_VACUUM_TABLES). VACUUM cannot run inside a
    transaction, so it gets a connection of its own in autocommit; unknown names are skipped."""
    existing = set(connection.introspection.table_names())
    tables = [t for t in settings.MAINTENANCE_VACUUM_TABLES if t in existing]
    skipped = [t for t in settings.MAINTENANCE_VACUUM_TABLES if t not in existing]
    with Target.from_django().connect(autocommit=True) as conn:
        for table in tables:
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))
            progress(f"vacuumed {table}")
    if skipped:
        progress(f"skipped unknown table(s): {', '.join(skipped)}")
    return {"vacuumed": len(tables), "skipped": len(skipped)}

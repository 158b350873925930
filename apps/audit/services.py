"""Writing, verifying and pruning the audit log.

`audit_record` is the one way an entry is written. It appends to the chain of the entry's
organization (or the platform chain) inside the caller's transaction: the chain-head row is
taken with an upsert that locks it until that transaction ends, so two writers in one
organization queue up and never fork the chain, and an entry exists exactly when the change it
describes does.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.audit import context, events
from apps.audit.chain import entry_hash
from apps.audit.models import PLATFORM_CHAIN, AuditChainHead, AuditEntry
from apps.audit.redaction import scrub

_HEAD_TABLE = AuditChainHead._meta.db_table


def chain_name(organization_id: Any) -> str:
    return f"org:{organization_id}" if organization_id else PLATFORM_CHAIN


def _take_head(chain: str) -> tuple[int, str]:
    """Lock the chain's head (creating it on first use) and advance it: the new entry's
    sequence number and the hash it links to. The lock is held until the transaction ends."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {_HEAD_TABLE} AS head (chain, seq, last_hash, base_seq, base_hash)
            VALUES (%s, 1, '', 0, '')
            ON CONFLICT (chain) DO UPDATE SET seq = head.seq + 1
            RETURNING head.seq, head.last_hash
            """,  # noqa: S608 - the table name is ours, values are parameters
            [chain],
        )
        seq, last_hash = cursor.fetchone()
    return int(seq), last_hash


def _as_jsonb(value: Any) -> Any:
    """`value` as PostgreSQL's jsonb gives it back, so the hash sealed before the insert still
    matches the row read later: jsonb keeps numbers as decimals, so the float 1e16 reads back as
    the integer 10000000000000000 and -0.0 as 0.0 (and it cannot hold NaN or infinity at all)."""
    if isinstance(value, dict):
        return {key: _as_jsonb(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_as_jsonb(item) for item in value]
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == 0:
            return 0.0
        text = repr(value)
        if "e" in text and abs(value) >= 1:
            return int(Decimal(text))
    return value


def audit_record(
    *,
    event: str,
    organization_id: Any = None,
    object_type: str = "",
    object_id: Any = "",
    object_repr: str = "",
    changes: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    actor: context.Actor | None = None,
) -> AuditEntry:
    """Append one entry for `event` (a type from apps.audit.events) in the current transaction.

    The actor, IP, user agent and request id come from the audit context (the request or the
    running job) unless `actor` is given. `metadata` is scrubbed of anything named like a
    secret; `changes` must already be redacted (apps.audit.redaction.diff does it).
    """
    if event not in events.EVENT_TYPES:
        raise ValueError(f"unknown audit event type {event!r}")
    resolved, ctx = context.resolve()
    actor = actor or resolved
    org_id = organization_id or None
    chain = chain_name(org_id)
    # No savepoint: an entry that cannot be written fails the change it describes.
    with transaction.atomic(savepoint=False):
        seq, prev_hash = _take_head(chain)
        entry = AuditEntry(
            chain=chain,
            seq=seq,
            occurred_at=timezone.now(),
            organization_id=uuid.UUID(str(org_id)) if org_id else None,
            event=event,
            actor_type=actor.type,
            actor_id=actor.id[:64],
            actor_label=actor.label[:255],
            ip=(ctx.ip or "")[:64],
            user_agent=(ctx.user_agent or "")[:512],
            request_id=(ctx.request_id or "")[:128],
            object_type=object_type[:100],
            object_id=("" if object_id is None else str(object_id))[:64],
            object_repr=str(object_repr or "")[:255],
            changes=_as_jsonb(changes or {}),
            metadata=_as_jsonb(scrub(metadata or {})),
            prev_hash=prev_hash,
        )
        entry.hash = entry_hash(entry)
        entry.save(force_insert=True)
        AuditChainHead.objects.filter(chain=chain).update(last_hash=entry.hash)
    return entry


# --- verification ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokenLink:
    chain: str
    seq: int
    entry_id: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "chain": self.chain,
            "seq": self.seq,
            "entry_id": self.entry_id,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ChainReport:
    chain: str
    entries: int
    broken: BrokenLink | None

    @property
    def ok(self) -> bool:
        return self.broken is None


def _verify_chain(head: AuditChainHead, batch_size: int) -> ChainReport:
    expected_seq, expected_prev = head.base_seq + 1, head.base_hash
    count = 0
    # Retention may have removed every entry: the chain then still ends where the base starts.
    last_seq = head.base_seq
    queryset = AuditEntry.objects.filter(chain=head.chain).order_by("seq")
    for entry in queryset.iterator(chunk_size=batch_size):
        count += 1
        reason = ""
        broken_seq = entry.seq
        if entry.seq != expected_seq:
            # The place of the missing (or moved) row is where the chain breaks.
            broken_seq = expected_seq
            reason = f"entry {expected_seq} is missing (found {entry.seq} in its place)"
        elif entry.prev_hash != expected_prev:
            reason = "does not link to the previous entry"
        elif entry_hash(entry) != entry.hash:
            reason = "contents do not match the entry's hash"
        if reason:
            return ChainReport(
                head.chain, count, BrokenLink(head.chain, broken_seq, str(entry.id), reason)
            )
        expected_seq, expected_prev, last_seq = entry.seq + 1, entry.hash, entry.seq
    if last_seq != head.seq or (head.seq > head.base_seq and expected_prev != head.last_hash):
        return ChainReport(
            head.chain,
            count,
            BrokenLink(
                head.chain,
                last_seq + 1,
                "",
                f"the chain ends at {last_seq} but its head records {head.seq}",
            ),
        )
    return ChainReport(head.chain, count, None)


def audit_verify(
    *, organization_id: Any = None, platform_only: bool = False, batch_size: int = 2000
) -> list[ChainReport]:
    """Recompute every chain (or one organization's) and report, per chain, the first broken
    link: the first row whose sequence, link or contents do not match."""
    heads = AuditChainHead.objects.all()
    if organization_id:
        heads = heads.filter(chain=chain_name(organization_id))
    elif platform_only:
        heads = heads.filter(chain=PLATFORM_CHAIN)
    reports = [_verify_chain(head, batch_size) for head in heads.order_by("chain")]
    # Entries whose chain has no head at all (the head row was deleted) are broken too.
    known = set(AuditChainHead.objects.values_list("chain", flat=True))
    orphans = AuditEntry.objects.exclude(chain__in=known)
    if organization_id:
        orphans = orphans.filter(chain=chain_name(organization_id))
    first = orphans.order_by("chain", "seq").first()
    if first is not None:
        reports.append(
            ChainReport(
                first.chain,
                0,
                BrokenLink(first.chain, first.seq, str(first.id), "the chain has no head record"),
            )
        )
    return reports


# --- retention ----------------------------------------------------------------------------------


def audit_prune(*, now: Any = None, batch_size: int = 5000) -> int:
    """Delete entries older than AUDIT_RETENTION_DAYS (0 keeps them forever). Each chain keeps
    verifying: its head records where the remaining entries start and what they link to.

    Each batch is its own short transaction holding only its chain's head: appends lock the
    same row, so one long transaction over every head would stall all audited writes while
    years of entries are deleted."""
    days = settings.AUDIT_RETENTION_DAYS
    if days <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(days=days)
    deleted = 0
    for chain in AuditChainHead.objects.order_by("chain").values_list("chain", flat=True):
        last_old = (
            AuditEntry.objects.filter(chain=chain, occurred_at__lt=cutoff)
            .order_by("-seq")
            .values_list("seq", flat=True)
            .first()
        )
        while last_old is not None:
            with transaction.atomic():
                head = AuditChainHead.objects.select_for_update().get(chain=chain)
                upto = min(last_old, head.base_seq + batch_size)
                last = (
                    AuditEntry.objects.filter(chain=chain, seq__lte=upto)
                    .order_by("-seq")
                    .values("seq", "hash")
                    .first()
                )
                if last is None:
                    break
                count, _ = AuditEntry.objects.filter(chain=chain, seq__lte=last["seq"]).delete()
                deleted += count
                AuditChainHead.objects.filter(chain=chain).update(
                    base_seq=last["seq"], base_hash=last["hash"]
                )
            if last["seq"] >= last_old:
                break
    return deleted


# --- explicit events -----------------------------------------------------------------------------


def audit_object_event(*, event: str, obj: Any, metadata: dict[str, Any] | None = None) -> None:
    """An explicit event about one row (a secret read, a key created, a job canceled): the
    row's organization, type and id; never its fields."""
    audit_record(
        event=event,
        organization_id=getattr(obj, "organization_id", None),
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        object_repr=_safe_repr(obj),
        metadata=metadata,
    )


def _safe_repr(obj: Any) -> str:
    try:
        return str(obj)[:255]
    except Exception:  # noqa: BLE001 - a repr must never stop the change being recorded
        return obj._meta.label_lower


def _user_actor(user: Any) -> context.Actor:
    return context.Actor(type="user", id=str(user.pk), label=str(user)[:255])


def audit_sign_in(*, user: Any, method: str) -> None:
    """A person signed in (SSO; console sign-ins come from Django's signal)."""
    audit_record(
        event=events.AUTH_SIGN_IN,
        object_type="accounts.user",
        object_id=str(user.pk),
        object_repr=str(user),
        metadata={"method": method},
        actor=_user_actor(user),
    )


def audit_sign_in_failed(*, method: str, reason: str) -> None:
    audit_record(
        event=events.AUTH_SIGN_IN_FAILED,
        object_type="accounts.user",
        metadata={"method": method, "reason": reason[:200]},
    )


def audit_refresh_token_reuse(*, token: Any, revoked: int) -> None:
    """A used refresh token was presented again: its whole login chain was revoked."""
    audit_record(
        event=events.AUTH_REFRESH_REUSE,
        object_type="accounts.refreshtoken",
        object_id=str(token.pk),
        metadata={
            "user_id": str(token.user_id),
            "family_id": str(token.family_id),
            "revoked": revoked,
        },
    )


def audit_secret_read(*, event: str, obj: Any) -> None:
    """A secret was read (reveal, download, kubeconfig): which row, never the secret."""
    audit_object_event(event=event, obj=obj)


def audit_secret_revealed(*, organization_id: Any, resource: str, resource_id: Any) -> None:
    """A stored secret was read through the API: a download when the route is one (the SSH key
    download), otherwise a reveal. Which row, never the secret."""
    request = context.current().request
    path = getattr(request, "path", "") or ""
    event = events.SECRET_DOWNLOAD if "/download" in path else events.SECRET_REVEAL
    audit_record(
        event=event,
        organization_id=organization_id,
        object_type=resource,
        object_id=str(resource_id),
    )

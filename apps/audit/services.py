"""Writing, sealing, verifying and pruning the audit log.

`audit_record` is the one way an entry is written. It inserts the entry **unsealed** in the
caller's transaction (an entry exists exactly when the change it describes does), with a keyed
MAC over its contents and no lock on anything shared, so writers in one organization never queue
behind each other's audit entries, and no request ever holds a chain lock while it takes a row
lock (the order that deadlocked against node-pool rows).

`audit_seal` gives a chain's committed, unsealed entries their sequence number, link and hash,
under that chain's head lock, in a short transaction of its own that touches nothing else. It
runs right after the writing transaction commits (`transaction.on_commit`), and the
`audit.seal` schedule catches up on anything a dead process left behind (docs/audit.md: the
window).
"""

from __future__ import annotations

import hashlib
import logging
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.audit import context, events
from apps.audit.chain import entry_hash, entry_mac, entry_mac_ok
from apps.audit.models import PLATFORM_CHAIN, AuditChainHead, AuditEntry, AuditVerification
from apps.audit.redaction import scrub
from apps.core import events as core_events

logger = logging.getLogger(__name__)

_HEAD_TABLE = AuditChainHead._meta.db_table


def chain_name(organization_id: Any) -> str:
    return f"org:{organization_id}" if organization_id else PLATFORM_CHAIN


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
    entry = AuditEntry(
        id=uuid.uuid4(),
        chain=chain,
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
    )
    entry.mac = entry_mac(entry)
    # No savepoint: an entry that cannot be written fails the change it describes.
    entry.save(force_insert=True)
    _seal_on_commit(chain)
    # Listeners (the webhooks outbox) write in this same transaction.
    core_events.event_publish("audit.entry", entry=entry)
    return entry


# --- sealing -----------------------------------------------------------------------------------


# Under a steady stream of writes to one chain the sealer could keep finding new entries; a
# request stops after this many batches and leaves the rest to the next sealer (the next write)
# or the schedule, so no response waits on other requests' entries for long.
_REQUEST_SEAL_ROUNDS = 8


class AuditChainSealer:
    """The on-commit callback that seals one chain (one per chain per transaction)."""

    def __init__(self, chain: str) -> None:
        self.chain = chain

    def __call__(self) -> None:
        try:
            audit_seal(chain=self.chain, max_rounds=_REQUEST_SEAL_ROUNDS)
        except Exception:  # noqa: BLE001 - the change is committed; the schedule seals later
            logger.exception("audit_seal_failed", extra={"chain": self.chain})


def _seal_on_commit(chain: str) -> None:
    # Outside a transaction on_commit runs at once; inside one, a single sealer per chain is
    # enough however many entries the transaction writes.
    pending = connection.run_on_commit if connection.in_atomic_block else []
    if any(getattr(item[1], "chain", None) == chain for item in pending):
        return
    transaction.on_commit(AuditChainSealer(chain))


_ENTRY_TABLE = AuditEntry._meta.db_table


def _take_chain(chain: str) -> tuple[int, str] | None:
    """Take the chain's sealer lock and its head row (created on first use) for the rest of the
    transaction, in one round trip: the last sealed sequence number and hash, or None when
    another sealer has the lock. The lock is a transaction-scoped advisory lock, so retention
    (which locks only the head row) never makes a sealer skip."""
    digest = hashlib.sha256(f"audit-seal:{chain}".encode()).digest()[:8]
    key = int.from_bytes(digest, "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH sealer AS (SELECT pg_try_advisory_xact_lock(%s) AS ok)
            INSERT INTO {_HEAD_TABLE} AS head (chain, seq, last_hash, base_seq, base_hash)
            SELECT %s, 0, '', 0, '' FROM sealer WHERE sealer.ok
            ON CONFLICT (chain) DO UPDATE SET seq = head.seq
            RETURNING head.seq, head.last_hash
            """,  # noqa: S608 - the table name is ours, values are parameters
            [key, chain],
        )
        row = cursor.fetchone()
    return None if row is None else (int(row[0]), row[1])


def _store_seals(chain: str, done: list[AuditEntry]) -> None:
    """Write the sealed entries and advance the head, in one statement."""
    values = ", ".join(["(%s::uuid, %s::bigint, %s, %s)"] * len(done))
    params: list[Any] = []
    for entry in done:
        params += [entry.pk, entry.seq, entry.prev_hash, entry.hash]
    last = done[-1]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH sealed AS (
                UPDATE {_ENTRY_TABLE} AS entry
                SET seq = v.seq, prev_hash = v.prev_hash, hash = v.hash
                FROM (VALUES {values}) AS v (id, seq, prev_hash, hash)
                WHERE entry.id = v.id
            )
            UPDATE {_HEAD_TABLE} SET seq = %s, last_hash = %s WHERE chain = %s
            """,  # noqa: S608 - table names are ours, values are parameters
            [*params, last.seq, last.hash, chain],
        )


# How long a committed entry may wait for its seal (normally milliseconds; the catch-up schedule
# runs every 10 s). An older unsealed row is refused: it is most likely a genuine entry that
# retention pruned (AUDIT_RETENTION_DAYS is at least one day) put back with its valid MAC, which
# would otherwise be sealed again as a new link.
UNSEALED_MAX_AGE = timedelta(days=1)


def _unsealable(entry: AuditEntry, now: datetime) -> str:
    """Why the sealer refuses this unsealed row ("" if it may be sealed); verify applies the
    same rule."""
    if not entry_mac_ok(entry):
        return "an unsealed entry that audit_record did not write (its MAC does not match)"
    if entry.occurred_at < now - UNSEALED_MAX_AGE:
        return (
            "an unsealed entry older than a day (a pruned entry put back, or one never sealed): "
            "the sealer refuses it"
        )
    return ""


def _seal_batch(
    chain: str, head: tuple[int, str], batch_size: int, refused: set[uuid.UUID]
) -> tuple[int, bool]:
    """Seal up to `batch_size` entries (under the chain's locks); how many, and whether the
    batch was full. Rows whose MAC does not verify are added to `refused` and left alone."""
    seq, last_hash = head
    pending = list(
        AuditEntry.objects.filter(chain=chain, seq__isnull=True)
        .exclude(pk__in=refused)
        .order_by("occurred_at", "id")[:batch_size]
    )
    done = []
    now = timezone.now()
    for entry in pending:
        if _unsealable(entry, now):
            logger.error("audit_forged_entry", extra={"chain": chain, "entry_id": str(entry.pk)})
            refused.add(entry.pk)
            continue
        seq += 1
        entry.seq, entry.prev_hash = seq, last_hash
        entry.hash = last_hash = entry_hash(entry)
        done.append(entry)
    if done:
        _store_seals(chain, done)
    return len(done), len(pending) == batch_size


def audit_seal(*, chain: str, batch_size: int = 500, max_rounds: int | None = None) -> int:
    """Seal the committed, unsealed entries of one chain, oldest first: the next sequence
    number, the previous entry's hash and their own hash. Returns how many were sealed.

    Each batch is one short transaction holding the chain's sealer lock and head row, and
    nothing else, so a sealer never deadlocks with a request. Sealers never queue either: one
    that finds the lock taken leaves at once, because the holder, after letting go, looks again
    for entries committed meanwhile (which includes this one's) and seals them. An unsealed row
    whose MAC does not verify did not come through `audit_record`: it is left unsealed, logged,
    and reported by verify. `max_rounds` bounds the batches (the on-commit sealer's is small)."""
    sealed, rounds = 0, 0
    refused: set[uuid.UUID] = set()
    while max_rounds is None or rounds < max_rounds:
        rounds += 1
        with transaction.atomic():
            head = _take_chain(chain)
            if head is None:
                return sealed
            count, full = _seal_batch(chain, head, batch_size, refused)
        sealed += count
        if full:
            continue
        waiting = AuditEntry.objects.filter(chain=chain, seq__isnull=True).exclude(pk__in=refused)
        if not waiting.exists():
            return sealed
    return sealed


def audit_seal_pending() -> int:
    """Seal every chain that has unsealed entries (the `audit.seal` catch-up schedule)."""
    chains = (
        AuditEntry.objects.filter(seq__isnull=True)
        .order_by("chain")
        .values_list("chain", flat=True)
        .distinct()
    )
    return sum(audit_seal(chain=chain) for chain in list(chains))


# --- verification ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokenLink:
    chain: str
    # None for an unsealed row that has no place in the chain (a forged one).
    seq: int | None
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
    """One chain: sealed entries checked, the first broken link, and the unsealed tail (entries
    committed but not sealed yet: normally none, or a few from the last moments)."""

    chain: str
    entries: int
    broken: BrokenLink | None
    unsealed: int = 0
    unsealed_since: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None


def _verify_sealed(head: AuditChainHead, batch_size: int) -> tuple[int, BrokenLink | None]:
    expected_seq, expected_prev = head.base_seq + 1, head.base_hash
    count = 0
    # Retention may have removed every entry: the chain then still ends where the base starts.
    last_seq = head.base_seq
    queryset = AuditEntry.objects.filter(chain=head.chain, seq__isnull=False).order_by("seq")
    for entry in queryset.iterator(chunk_size=batch_size):
        count += 1
        reason = ""
        broken_seq = seq = int(entry.seq or 0)  # the query keeps sealed entries only
        if seq != expected_seq:
            # The place of the missing (or moved) row is where the chain breaks.
            broken_seq = expected_seq
            reason = f"entry {expected_seq} is missing (found {entry.seq} in its place)"
        elif entry.prev_hash != expected_prev:
            reason = "does not link to the previous entry"
        elif entry_hash(entry) != entry.hash:
            reason = "contents do not match the entry's hash"
        elif not entry_mac_ok(entry):
            # The hash is not keyed: a row inserted already sealed, or edited and re-hashed
            # (with the head moved), hashes correctly but was not written by audit_record.
            reason = "not written by audit_record (its MAC does not match)"
        if reason:
            return count, BrokenLink(head.chain, broken_seq, str(entry.id), reason)
        expected_seq, expected_prev, last_seq = seq + 1, entry.hash, seq
    if last_seq != head.seq or (head.seq > head.base_seq and expected_prev != head.last_hash):
        return count, BrokenLink(
            head.chain,
            last_seq + 1,
            "",
            f"the chain ends at {last_seq} but its head records {head.seq}",
        )
    return count, None


def _verify_chain(chain: str, head: AuditChainHead | None, batch_size: int) -> ChainReport:
    count, broken = _verify_sealed(head, batch_size) if head is not None else (0, None)
    if head is None and AuditEntry.objects.filter(chain=chain, seq__isnull=False).exists():
        # Sealed entries whose chain has no head at all (the head row was deleted).
        first = AuditEntry.objects.filter(chain=chain, seq__isnull=False).order_by("seq").first()
        assert first is not None  # noqa: S101 - exists() just said so
        broken = BrokenLink(chain, first.seq, str(first.id), "the chain has no head record")
    unsealed, since = 0, None
    pending = AuditEntry.objects.filter(chain=chain, seq__isnull=True).order_by("occurred_at")
    now = timezone.now()
    for entry in pending.iterator(chunk_size=batch_size):
        refused = _unsealable(entry, now)
        if refused:
            if broken is None:
                broken = BrokenLink(chain, None, str(entry.id), refused)
            continue
        unsealed += 1
        since = since or entry.occurred_at
    return ChainReport(chain, count, broken, unsealed, since)


def audit_verify(
    *, organization_id: Any = None, platform_only: bool = False, batch_size: int = 2000
) -> list[ChainReport]:
    """Recompute every chain (or one organization's) and report, per chain, the first broken
    link (the first sealed row whose sequence, link or contents do not match, or an unsealed
    row with a MAC that does not verify) and the unsealed tail, which is not a break: those
    entries are committed and waiting for the sealer."""
    heads = AuditChainHead.objects.all()
    entries = AuditEntry.objects.all()
    if organization_id:
        heads = heads.filter(chain=chain_name(organization_id))
        entries = entries.filter(chain=chain_name(organization_id))
    elif platform_only:
        heads = heads.filter(chain=PLATFORM_CHAIN)
        entries = entries.filter(chain=PLATFORM_CHAIN)
    by_chain: dict[str, AuditChainHead | None] = {head.chain: head for head in heads}
    # Chains with entries but no head: new chains not sealed yet, or a deleted head row.
    headless = entries.exclude(chain__in=list(by_chain)).order_by("chain")
    for chain in headless.values_list("chain", flat=True).distinct():
        by_chain.setdefault(chain, None)
    reports = [_verify_chain(chain, by_chain[chain], batch_size) for chain in sorted(by_chain)]
    broken = [report for report in reports if not report.ok]
    if broken:
        core_events.event_publish("audit.verify_failed", reports=broken)
    return reports


# How many verification outcomes are kept (the newest is the metric; the rest a short record).
_VERIFICATIONS_KEPT = 90


def audit_verify_record() -> list[ChainReport]:
    """Verify every chain and record the outcome (`AuditVerification`), for the metrics and
    their alert; the reports are returned for whoever asked."""
    reports = audit_verify()
    AuditVerification.objects.create(
        checked_at=timezone.now(),
        chains=len(reports),
        broken_chains=sum(1 for report in reports if report.broken is not None),
    )
    stale = AuditVerification.objects.order_by("-checked_at")[_VERIFICATIONS_KEPT:]
    AuditVerification.objects.filter(pk__in=list(stale.values_list("pk", flat=True))).delete()
    return reports


def audit_last_verification() -> AuditVerification | None:
    """The newest recorded verification, if any ran."""
    return AuditVerification.objects.order_by("-checked_at").first()


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
            AuditEntry.objects.filter(chain=chain, occurred_at__lt=cutoff, seq__isnull=False)
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
                cut = int(last["seq"] or 0)  # seq__lte matches sealed entries only
                count, _ = AuditEntry.objects.filter(chain=chain, seq__lte=cut).delete()
                deleted += count
                AuditChainHead.objects.filter(chain=chain).update(
                    base_seq=cut, base_hash=last["hash"]
                )
            if cut >= last_old:
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

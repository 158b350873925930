"""DNS business logic: domains, record sets, settings, plans, and the reconcile job's work.

Writes through the API only change the database and enqueue a reconcile of the domain (the
job row is written in the same transaction, its message sent on commit). The reconcile reads
the whole zone once, compares it with every record set of the domain (`reconcile.compute_plan`)
and applies the difference in as few batches as Route 53 allows.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from apps.core.api.errors import APIError, bad_request, conflict, not_found
from apps.dns import reconcile
from apps.dns.clients import Route53Client, Route53Error, RRset
from apps.dns.models import DNSPlan, DNSSettings, Domain, RecordSet
from apps.dns.names import (
    APEX,
    InvalidName,
    fqdn,
    normalize_domain_name,
    normalize_record_name,
    validate_ttl,
    validate_values,
    wire_values,
)
from apps.infrastructure.models import Credential
from apps.infrastructure.selectors import credential_scope_allows
from apps.jobs.models import JobRun
from apps.jobs.runner import JobFailed
from apps.jobs.services import JobActive, job_enqueue

RECONCILE_KIND = "dns_reconcile"
PURGE_KIND = "dns_purge"
PLANS_KEPT = 20
_ZONE_ID = re.compile(r"^[A-Za-z0-9]{1,128}$")

Log = Callable[[str], None]


def _invalid(exc: InvalidName) -> APIError:
    return bad_request("validation_error", f"{exc.field}: {exc.message}")


def _locked_domain(pk: uuid.UUID) -> Domain:
    """The domain row, locked; 404 when a concurrent request deleted it after the view found it."""
    domain = Domain.objects.select_for_update().filter(pk=pk).first()
    if domain is None:
        raise not_found("not_found", "domain not found")  # the original's code on DNS routes
    return domain


def _shared_domain(pk: uuid.UUID, lock_name: str | None = None) -> Domain:
    """The domain row under a share lock, for record-set writes: any number of them hold it at
    once (they serialize per name instead, `_lock_names`, here too for `lock_name`), while a
    domain PATCH or delete (an exclusive lock) waits for them, or they for it; 404 when a
    concurrent request deleted it."""
    table = Domain._meta.db_table
    extra = ""
    params: list[Any] = [pk]
    if lock_name is not None:
        # Also whether a reconcile is already active (`reconcile_active`), saving the enqueue
        # its own round trip.
        extra = f"""
            , pg_advisory_xact_lock(%s)::text AS name_lock,
            EXISTS (
                SELECT 1 FROM {JobRun._meta.db_table} job
                WHERE job.kind = %s AND job.subject_type = %s AND job.subject_id = domain.id
                AND job.status = ANY(%s)
            ) AS reconcile_active"""  # noqa: S608 - our table name, values are parameters
        params = [
            _advisory_key("name", f"{pk}:{lock_name}"),
            RECONCILE_KIND,
            JobRun.SubjectType.DOMAIN.value,
            [str(status) for status in JobRun.ACTIVE_STATUSES],
            pk,
        ]
    found = list(
        Domain.objects.raw(
            f"SELECT domain.*{extra} FROM {table} domain WHERE domain.id = %s FOR SHARE",  # noqa: S608
            params,
        )
    )
    if not found:
        raise not_found("not_found", "domain not found")
    return found[0]


def _advisory_key(kind: str, value: Any) -> int:
    """A PostgreSQL advisory-lock key (64-bit) for one DNS resource."""
    digest = hashlib.sha256(f"dns-{kind}:{value}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _lock_names(domain: Domain, *names: str) -> None:
    """Serialize record-set writes of one name in one domain until the transaction ends, so the
    uniqueness and CNAME-alone checks hold; writes of other names go on in parallel. Keys are
    taken in one order, so a rename (two names) cannot deadlock with another."""
    keys = sorted({_advisory_key("name", f"{domain.pk}:{name}") for name in names})
    with connection.cursor() as cursor:
        for key in keys:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def _current_record(pk: uuid.UUID) -> RecordSet:
    """The record set as stored now, locked until the transaction ends (a concurrent PATCH of
    it waits and then builds on this one's result); 404 when a concurrent request deleted it."""
    record = RecordSet.objects.select_for_update().filter(pk=pk).first()
    if record is None:
        raise not_found("not_found", "record set not found")  # the original's code on DNS routes
    return record


# --- domains ----------------------------------------------------------------------------------


def _route53_credential(organization_id: uuid.UUID, credential_id: Any) -> Credential:
    """An AWS access key of this organization whose scope allows Route 53 (400
    `invalid_credential` otherwise, as the original; another org's credential is absent)."""
    try:
        pk = uuid.UUID(str(credential_id))
    except (TypeError, ValueError):
        raise bad_request("invalid_credential", "credential_id: must be a UUID") from None
    credential = Credential.objects.for_org(organization_id).filter(pk=pk).first()
    if credential is None:
        raise bad_request("invalid_credential", "credential_id: credential not found")
    if credential.provider != "aws" or credential.kind != "aws_access_key":
        raise bad_request("invalid_credential", "credential_id: must be an AWS access key")
    if not credential_scope_allows(credential, service="route53"):
        raise bad_request(
            "invalid_credential", "credential_id: the credential's scope does not allow route53"
        )
    return credential


def _clean_zone_id(zone_id: Any) -> str:
    if zone_id in (None, ""):
        return ""
    if not isinstance(zone_id, str):
        raise bad_request("validation_error", "zone_id: must be a string")
    value = zone_id.strip().rsplit("/", 1)[-1]
    if not _ZONE_ID.match(value):
        raise bad_request("validation_error", "zone_id: must be a Route 53 hosted zone id")
    return value


def domain_create(
    *, organization_id: uuid.UUID, domain_name: Any, credential_id: Any, zone_id: Any = ""
) -> Domain:
    """Register a domain (status `pending`); the reconcile finds or checks its hosted zone."""
    try:
        name = normalize_domain_name(domain_name)
    except InvalidName as exc:
        raise _invalid(exc) from None
    credential = _route53_credential(organization_id, credential_id)
    domain = Domain(
        organization_id=organization_id,
        domain_name=name,
        credential=credential,
        zone_id=_clean_zone_id(zone_id),
    )
    try:
        with transaction.atomic():
            domain.save()
            domain_reconcile_enqueue(domain=domain)
    except IntegrityError:
        raise conflict("already_exists", f"domain_name: {name} already exists") from None
    return domain


def _domain_rename(domain: Domain, value: Any) -> bool:
    try:
        name = normalize_domain_name(value)
    except InvalidName as exc:
        raise _invalid(exc) from None
    if name == domain.domain_name:
        return False
    if domain.record_sets.exists():
        raise conflict(
            "domain_has_records",
            "domain_name: a domain with record sets cannot be renamed; create a new domain",
        )
    domain.domain_name = name
    return True


def _domain_rebind(domain: Domain, changes: Mapping[str, Any]) -> bool:
    """Apply a new credential and/or zone; True when either changed."""
    changed = False
    if "credential_id" in changes:
        credential = _route53_credential(domain.organization_id, changes["credential_id"])
        if credential.pk != domain.credential_id:
            domain.credential, changed = credential, True
    if "zone_id" in changes:
        zone_id = _clean_zone_id(changes["zone_id"])
        # "" asks for the zone named as the domain, which is the one it has when the names
        # match: no rebind, so no purge of the zone the domain is about to find again.
        if not zone_id and domain.zone_id and domain.zone_name == domain.domain_name:
            zone_id = domain.zone_id
        if zone_id != domain.zone_id:
            domain.zone_id, changed = zone_id, True
    return changed


@transaction.atomic
def domain_update(*, domain: Domain, changes: Mapping[str, Any]) -> Domain:
    """PATCH. A new name, credential or zone puts the domain back to `pending` (checked
    again); `status: pending` clears `last_error`. Renaming a domain that has record sets is
    refused: their names in Route 53 would be left behind under the old name. A new zone gets
    the old zone's Autoglue records removed (a `dns_purge` job)."""
    domain = _locked_domain(domain.pk)
    old_zone, old_credential_id = domain.zone_id, domain.credential_id
    renamed = "domain_name" in changes and _domain_rename(domain, changes["domain_name"])
    if _domain_rebind(domain, changes) or renamed:
        domain.status, domain.last_error, domain.zone_name = Domain.Status.PENDING, "", ""
        # Its plans were read from the old zone, name or account.
        DNSPlan.objects.filter(domain_id=domain.pk, status=DNSPlan.Status.OPEN).update(
            status=DNSPlan.Status.STALE,
            error="the domain's zone, credential or name changed since the plan",
            updated_at=timezone.now(),
        )
    if "status" in changes:
        domain.status = changes["status"]
        if domain.status == Domain.Status.PENDING:
            domain.last_error, domain.zone_name = "", ""
    try:
        with transaction.atomic():
            domain.save()
    except IntegrityError:
        raise conflict("already_exists", "domain_name: already exists") from None
    if old_zone and old_zone != domain.zone_id:
        # The old zone is reached with the credential that served it, not a new one.
        _purge_enqueue(domain=domain, zone_id=old_zone, credential_id=old_credential_id)
    domain_reconcile_enqueue(domain=domain)
    return domain


@transaction.atomic
def domain_delete(*, domain: Domain) -> None:
    """Delete a domain and its record sets, release the clusters using them, and remove from
    Route 53 the records Autoglue owns there (a `dns_purge` job that needs only the zone, the
    credential and the name, so it runs after the row is gone)."""
    from apps.clusters.services import cluster_release_references

    cluster_release_references(domain=domain)
    if domain.zone_id:
        _purge_enqueue(domain=domain, zone_id=domain.zone_id, credential_id=domain.credential_id)
    domain.delete()


def _purge_enqueue(*, domain: Domain, zone_id: str, credential_id: uuid.UUID) -> None:
    # Already queued for this domain: that purge cleans the older zone; rare enough to accept.
    with contextlib.suppress(JobActive):
        job_enqueue(
            kind=PURGE_KIND,
            organization_id=domain.organization_id,
            subject_type=JobRun.SubjectType.DOMAIN,
            subject_id=domain.pk,
            payload={
                "zone_id": zone_id,
                "credential_id": str(credential_id),
                "domain_name": domain.domain_name,
            },
        )


def domain_reconcile_enqueue(*, domain: Domain, active: bool | None = None) -> JobRun | None:
    """Queue a reconcile of the domain (sent on commit). None when one is already queued or
    running: a queued one will see this change; a running one may not, and the schedule picks
    up what it missed (record sets still `pending`). `active`: the caller already read whether
    one is (`_shared_domain` does, in the same round trip as its locks)."""
    # Record-set writes of one domain must not queue behind each other here: inserting the run
    # would wait on the unique index for a concurrent writer's uncommitted one. So: a committed
    # active run is seen with a plain read; a concurrent writer already enqueueing (it holds
    # this try-lock until it commits) will queue one that sees this change too. Only if that
    # writer rolls back is this change left to the schedule, like one a running job missed.
    if active is None:
        active = JobRun.objects.filter(
            kind=RECONCILE_KIND,
            subject_type=JobRun.SubjectType.DOMAIN,
            subject_id=domain.pk,
            status__in=JobRun.ACTIVE_STATUSES,
        ).exists()
    if active:
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_try_advisory_xact_lock(%s)", [_advisory_key("reconcile", domain.pk)]
        )
        if not cursor.fetchone()[0]:
            return None
    try:
        return job_enqueue(
            kind=RECONCILE_KIND,
            organization_id=domain.organization_id,
            subject_type=JobRun.SubjectType.DOMAIN,
            subject_id=domain.pk,
            payload={"mode": "auto"},
        )
    except JobActive:
        return None


# --- record sets ------------------------------------------------------------------------------


def record_fingerprint(
    *, zone_id: str, domain_name: str, name: str, rtype: str, ttl: int | None, values: list[str]
) -> str:
    """The original's fingerprint: SHA-256 of canonical JSON {zone_id, fqdn, type, ttl (left
    out when unset), values (sorted)}."""
    data: dict[str, Any] = {
        "zone_id": zone_id,
        "fqdn": fqdn(name, domain_name) + ".",
        "type": rtype,
        "values": sorted(values),
    }
    if ttl is not None:
        data["ttl"] = ttl
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _record_type(value: Any) -> str:
    rtype = value.strip().upper() if isinstance(value, str) else ""
    if rtype not in RecordSet.Type.values:
        raise bad_request("validation_error", f"type: one of {', '.join(RecordSet.Type.values)}")
    return rtype


def _check_name_free(
    domain: Domain, name: str, rtype: str, exclude: uuid.UUID | None
) -> RecordSet | None:
    """The record set of this type already at `name` (the caller answers it), after checking,
    in the same one query, that a CNAME stays alone at its name (RFC 1034 §3.6.2), also among
    Autoglue's own record sets."""
    if rtype == "CNAME" and name == APEX:
        raise bad_request("validation_error", "type: a CNAME cannot be at the zone apex")
    siblings = RecordSet.objects.filter(domain=domain, name=name).only("type", "owner")
    if exclude is not None:
        siblings = siblings.exclude(pk=exclude)
    found = list(siblings)
    same = next((r for r in found if r.type == rtype), None)
    others = [r.type for r in found if r.type != rtype]
    if same is None and others and (rtype == "CNAME" or "CNAME" in others):
        raise conflict(
            "cname_conflict", f"name: a CNAME must be alone at {fqdn(name, domain.domain_name)}"
        )
    return same


def _fingerprint_for(domain: Domain, record: RecordSet) -> str:
    return record_fingerprint(
        zone_id=domain.zone_id,
        domain_name=domain.domain_name,
        name=record.name,
        rtype=record.type,
        ttl=record.ttl,
        values=list(record.values),
    )


# No savepoint: every refusal comes before the first write, and a savepoint would cost two more
# round trips on the busiest DNS write (a refusal rolls the request's transaction back anyway).
@transaction.atomic(savepoint=False)
def record_set_create(
    *, domain: Domain, name: Any, type: Any, ttl: Any = None, values: Any = None
) -> RecordSet:
    """A new record set (status `pending`, owner `autoglue`) and a reconcile of its domain.
    (domain, name, type) is unique: 409 `already_exists`, or `ownership_conflict` when the
    existing one is not Autoglue's."""
    rtype = _record_type(type)
    try:
        rname = normalize_record_name(name, domain.domain_name)
        ttl = validate_ttl(ttl)
        values = validate_values(rtype, values, owner_fqdn=fqdn(rname, domain.domain_name))
    except InvalidName as exc:
        raise _invalid(exc) from None
    # The domain's share lock and the name's lock in one round trip; a domain renamed since the
    # caller read it (possible only while it has no record sets) is normalized again.
    locked = _shared_domain(domain.pk, lock_name=rname)
    if locked.domain_name != domain.domain_name:
        try:
            rname = normalize_record_name(name, locked.domain_name)
        except InvalidName as exc:
            raise _invalid(exc) from None
        _lock_names(locked, rname)
    active = bool(locked.reconcile_active)  # type: ignore[attr-defined]  # from the raw query
    domain = locked
    existing = _check_name_free(domain, rname, rtype, exclude=None)
    if existing is not None:
        if existing.owner not in (RecordSet.Owner.AUTOGLUE, RecordSet.Owner.UNKNOWN):
            raise conflict("ownership_conflict", f"{rtype} {rname}: owned by someone else")
        raise conflict("already_exists", f"{rtype} {rname}: already exists in this domain")
    record = RecordSet(
        organization_id=domain.organization_id,
        domain=domain,
        name=rname,
        name_as_given=name if isinstance(name, str) else "",
        type=rtype,
        ttl=ttl,
        values=values,
        owner=RecordSet.Owner.AUTOGLUE,
    )
    record.fingerprint = _fingerprint_for(domain, record)
    record.save()
    _record_sets_changed(domain)
    # Read before the insert (with the locks): a run that finishes before this commit without
    # seeing the new record set leaves it `pending`, which the schedule picks up.
    domain_reconcile_enqueue(domain=domain, active=active)
    return record


@transaction.atomic
def record_set_update(*, record_set: RecordSet, changes: Mapping[str, Any]) -> RecordSet:
    """PATCH: any change puts the record set back to `pending` with no error (unless `status`
    is given), recomputes its fingerprint and queues a reconcile."""
    domain = _shared_domain(record_set.domain_id)
    record = _current_record(record_set.pk)
    old_name = record.name
    try:
        if "type" in changes:
            record.type = _record_type(changes["type"])
        if "name" in changes:
            record.name = normalize_record_name(changes["name"], domain.domain_name)
            record.name_as_given = changes["name"] if isinstance(changes["name"], str) else ""
        if "ttl" in changes:
            record.ttl = validate_ttl(changes["ttl"])
        if changes.keys() & {"values", "type", "name"}:
            # A rename too: a CNAME may come to point at its own new name.
            record.values = validate_values(
                record.type,
                changes.get("values", record.values),
                owner_fqdn=fqdn(record.name, domain.domain_name),
            )
    except InvalidName as exc:
        raise _invalid(exc) from None
    _lock_names(domain, old_name, record.name)
    if _check_name_free(domain, record.name, record.type, exclude=record.pk) is not None:
        raise conflict("already_exists", f"{record.type} {record.name}: already exists")
    if "status" in changes:
        if changes["status"] not in RecordSet.Status.values:
            raise bad_request("validation_error", "status: pending, provisioning, ready or failed")
        record.status = changes["status"]
        if record.status == RecordSet.Status.PENDING:
            record.last_error = ""
    else:
        record.status, record.last_error = RecordSet.Status.PENDING, ""
    record.fingerprint = _fingerprint_for(domain, record)
    record.save()
    _record_sets_changed(domain)
    domain_reconcile_enqueue(domain=domain)
    return record


@transaction.atomic
def record_set_delete(*, record_set: RecordSet) -> None:
    """Delete a record set; the reconcile then removes it from Route 53 if Autoglue owns it
    there (its marker names this organization), and never otherwise."""
    from apps.clusters.services import cluster_release_references

    domain = _shared_domain(record_set.domain_id)
    cluster_release_references(record_set=record_set)
    record_set.delete()
    _record_sets_changed(domain)
    domain_reconcile_enqueue(domain=domain)


# --- settings and plans -----------------------------------------------------------------------


def dns_settings_get(*, organization_id: uuid.UUID) -> DNSSettings:
    found = DNSSettings.objects.filter(organization_id=organization_id).first()
    return found or DNSSettings(organization_id=organization_id)


def dns_settings_update(*, organization_id: uuid.UUID, require_plan: bool) -> DNSSettings:
    """Turn "changes only through a reviewed plan" on or off for the organization."""
    dns_settings, _ = DNSSettings.objects.update_or_create(
        organization_id=organization_id, defaults={"require_plan": require_plan}
    )
    return dns_settings


def dns_marker_key(*, organization_id: uuid.UUID) -> bytes:
    """The organization's key that signs its ownership markers: 32 random bytes made on first
    use, kept encrypted in its DNS settings (so it survives data key and master key rotations
    unchanged, and every marker stays valid)."""
    found = DNSSettings.objects.filter(organization_id=organization_id).first()
    if found is not None and found.marker_key:
        return base64.b64decode(str(found.marker_key))
    # Made once, under the row's lock, so concurrent first reconciles agree on one key.
    with transaction.atomic():
        dns_settings, _ = DNSSettings.objects.select_for_update().get_or_create(
            organization_id=organization_id
        )
        if not dns_settings.marker_key:
            dns_settings.marker_key = base64.b64encode(os.urandom(32)).decode()
            dns_settings.save(update_fields=["marker_key", "updated_at"])
    return base64.b64decode(str(dns_settings.marker_key))


def _requires_plan(organization_id: uuid.UUID) -> bool:
    return DNSSettings.objects.filter(organization_id=organization_id, require_plan=True).exists()


def _wanted(domain: Domain, records: list[RecordSet]) -> list[reconcile.Wanted]:
    return [
        reconcile.Wanted(
            record_id=str(record.pk),
            fqdn=fqdn(record.name, domain.domain_name),
            type=record.type,
            ttl=record.ttl,
            values=tuple(wire_values(record.type, list(record.values))),
            fingerprint=record.fingerprint or _fingerprint_for(domain, record),
        )
        for record in records
    ]


def _compute(
    domain: Domain, records: list[RecordSet], rrsets: list[RRset]
) -> tuple[reconcile.Plan, str, str]:
    wanted = _wanted(domain, records)
    plan = reconcile.compute_plan(
        zone_rrsets=rrsets,
        wanted=wanted,
        org_id=str(domain.organization_id),
        domain_name=domain.domain_name,
        zone_name=domain.zone_name or domain.domain_name,
        marker_key=dns_marker_key(organization_id=domain.organization_id),
        sibling_ids=_sibling_record_ids(domain),
    )
    return plan, reconcile.zone_digest(rrsets), reconcile.wanted_digest(wanted)


def _sibling_record_ids(domain: Domain) -> frozenset[str]:
    """Record sets of the organization's other domains in the same hosted zone: a parent
    domain's markers cover its sub-domain's names, which are still not the parent's to delete."""
    if not domain.zone_id:
        return frozenset()
    siblings = (
        RecordSet.objects.filter(
            organization_id=domain.organization_id, domain__zone_id=domain.zone_id
        )
        .exclude(domain_id=domain.pk)
        .values_list("pk", flat=True)
    )
    return frozenset(str(pk) for pk in siblings)


def _domain_records(domain: Domain) -> list[RecordSet]:
    return list(
        RecordSet.objects.filter(domain=domain)
        .only("id", "name", "type", "ttl", "values", "fingerprint", "status", "owner")
        .order_by("name", "type")
    )


def _plans_mark_stale(
    domain_id: uuid.UUID,
    *,
    zone_digest: str | None = None,
    desired_digest: str | None = None,
) -> int:
    """Mark the domain's open plans stale once what they were computed from has changed: the
    zone (its digest read now differs) or the record sets (any change to them, or a digest
    that differs). Applying one would be refused anyway; this says so before anyone tries."""
    open_plans = DNSPlan.objects.filter(domain_id=domain_id, status=DNSPlan.Status.OPEN)
    now = timezone.now()
    marked = 0
    if zone_digest is not None:
        marked += open_plans.exclude(zone_digest=zone_digest).update(
            status=DNSPlan.Status.STALE, error="the zone changed since the plan", updated_at=now
        )
    if desired_digest is None and zone_digest is not None:
        return marked
    records = (
        open_plans if desired_digest is None else open_plans.exclude(desired_digest=desired_digest)
    )
    return marked + records.update(
        status=DNSPlan.Status.STALE,
        error="the record sets changed since the plan",
        updated_at=now,
    )


def _zone_plans_mark_stale(zone_id: str, *, error: str = "the zone changed since the plan") -> int:
    """Mark stale every open plan read from `zone_id`, whichever domain it is for: after
    changes were sent to the zone (a reconcile or a purge), or when a domain's zone, credential
    or name changed. A plan being applied is `applying`, not open, so it is left alone."""
    if not zone_id:
        return 0
    return DNSPlan.objects.filter(domain__zone_id=zone_id, status=DNSPlan.Status.OPEN).update(
        status=DNSPlan.Status.STALE, error=error, updated_at=timezone.now()
    )


def _record_sets_changed(domain: Domain) -> int:
    """After a write to the domain's record sets: mark stale the open plans that would now write
    something else (their wanted digest differs). A status-only PATCH or an edit to the same
    values leaves what a plan writes, and so the plan, as it was."""
    desired = reconcile.wanted_digest(_wanted(domain, _domain_records(domain)))
    return _plans_mark_stale(domain.pk, desired_digest=desired)


def domain_plan_create(*, domain: Domain) -> DNSPlan:
    """Read the zone now and record what the next reconcile would change, with an ownership
    verdict per change (beyond the contract; docs/dns.md). The domain must be `ready`."""
    if domain.status != Domain.Status.READY or not domain.zone_name:
        raise conflict("domain_not_ready", "the domain's hosted zone has not been checked yet")
    client = Route53Client.for_credential(domain.credential)
    records = _domain_records(domain)
    try:
        rrsets = list(client.list_rrsets(domain.zone_id))
    except Route53Error as exc:
        raise APIError(502, "route53_error", str(exc)) from None
    plan, zone_digest, desired_digest = _compute(domain, records, rrsets)
    _plans_mark_stale(domain.pk, zone_digest=zone_digest, desired_digest=desired_digest)
    # Plans are cheap to make again; each domain keeps its latest few.
    old = DNSPlan.objects.filter(domain=domain).order_by("-created_at")[PLANS_KEPT - 1 :]
    DNSPlan.objects.filter(pk__in=list(old.values_list("pk", flat=True))).exclude(
        status=DNSPlan.Status.APPLYING
    ).delete()
    return DNSPlan.objects.create(
        organization_id=domain.organization_id,
        domain=domain,
        zone_digest=zone_digest,
        desired_digest=desired_digest,
        changes=plan.describe(),
        summary={**plan.summary(), "batches": len(reconcile.build_batches(plan.groups))},
    )


def dns_plan_apply(*, plan: DNSPlan) -> DNSPlan:
    """Queue the application of an open plan. Refused (409 `plan_stale`) when the domain's
    record sets changed since; the job refuses it too if the zone changed since."""
    with transaction.atomic():
        found = DNSPlan.objects.select_for_update().select_related("domain").filter(pk=plan.pk)
        locked = found.first()
        if locked is None:  # trimmed by a newer plan of the domain meanwhile
            raise not_found("plan_not_found", "DNS plan not found")
        plan = locked
        if plan.status == DNSPlan.Status.STALE:
            # Marked when the zone or the record sets changed (`_plans_mark_stale`).
            what = "zone" if "zone" in plan.error else "record sets"
            raise conflict("plan_stale", f"the domain's {what} changed since the plan")
        if plan.status != DNSPlan.Status.OPEN:
            raise conflict("plan_not_open", f"the plan is {plan.status}")
        wanted = _wanted(plan.domain, _domain_records(plan.domain))
        stale = reconcile.wanted_digest(wanted) != plan.desired_digest
        if stale:
            plan.status, plan.error = DNSPlan.Status.STALE, "record sets changed since the plan"
            plan.save(update_fields=["status", "error", "updated_at"])
        else:
            try:
                job = job_enqueue(
                    kind=RECONCILE_KIND,
                    organization_id=plan.organization_id,
                    subject_type=JobRun.SubjectType.DOMAIN,
                    subject_id=plan.domain_id,
                    payload={"mode": "plan", "plan_id": str(plan.pk)},
                )
            except JobActive:
                raise conflict(
                    "reconcile_active", "a reconcile of this domain is running; try again"
                ) from None
            plan.status, plan.job_id = DNSPlan.Status.APPLYING, job.pk
            plan.save(update_fields=["status", "job_id", "updated_at"])
    if stale:
        raise conflict("plan_stale", "the domain's record sets changed since the plan")
    return plan


# --- the reconcile job ------------------------------------------------------------------------


def _zone_lock_key(zone_id: str) -> int:
    return _advisory_key("zone", zone_id)


@contextmanager
def _zone_lock(zone_id: str, check: Callable[[], None], log: Log) -> Iterator[None]:
    """One reconcile or purge per hosted zone at a time, whichever domains and organizations
    share it (a PostgreSQL advisory lock held by this job's connection)."""
    key = _zone_lock_key(zone_id)
    deadline = time.monotonic() + settings.DNS_ZONE_LOCK_WAIT_SECONDS
    waited = False
    with connection.cursor() as cursor:
        while True:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            if cursor.fetchone()[0]:
                break
            if not waited:
                log(f"waiting for another reconcile of zone {zone_id}")
                waited = True
            check()
            if time.monotonic() > deadline:
                raise JobFailed(f"zone {zone_id} stayed busy with another reconcile")
            time.sleep(1)
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def _domain_verify(domain: Domain, client: Route53Client, log: Log) -> None:
    """Find (or check) the hosted zone; the domain becomes `ready` or `failed`."""
    try:
        if domain.zone_id:
            zone_id, zone_name = domain.zone_id, client.zone_name(domain.zone_id)
            if not reconcile.in_zone(domain.domain_name, zone_name):
                raise Route53Error(
                    f"hosted zone {zone_id} is {zone_name}, which does not contain "
                    f"{domain.domain_name}"
                )
        else:
            zone_id, zone_name = client.find_zone(domain.domain_name)
    except Route53Error as exc:
        Domain.objects.filter(pk=domain.pk).update(
            status=Domain.Status.FAILED, last_error=str(exc)[:2000], updated_at=timezone.now()
        )
        raise JobFailed(str(exc)) from None
    log(f"hosted zone {zone_id} ({zone_name}) checked")
    zone_changed = zone_id != domain.zone_id
    domain.zone_id, domain.zone_name = zone_id, zone_name
    domain.status, domain.last_error = Domain.Status.READY, ""
    domain.save(update_fields=["zone_id", "zone_name", "status", "last_error", "updated_at"])
    if zone_changed:
        records = list(RecordSet.objects.filter(domain=domain))
        for record in records:
            record.fingerprint = _fingerprint_for(domain, record)
        RecordSet.objects.bulk_update(records, ["fingerprint"], batch_size=1000)


def _apply(
    client: Route53Client, zone_id: str, plan: reconcile.Plan, log: Log, check: Callable[[], None]
) -> tuple[dict[str, str], int]:
    """Send the plan's batches. Returns (record set id -> error for failed batches, calls)."""
    failures: dict[str, str] = {}
    batches = reconcile.batch_pieces(plan.groups)
    calls = 0
    for index, pieces in enumerate(batches, 1):
        check()
        for change in (change for piece in pieces for change in piece):
            log(change.log_line())
        calls += _send(client, zone_id, pieces, f"batch {index}/{len(batches)}", log, failures)
    if calls:
        # The zone now differs from what every open plan of it was read from.
        _zone_plans_mark_stale(zone_id)
    return failures, calls


def _send(
    client: Route53Client,
    zone_id: str,
    pieces: list[list[reconcile.Change]],
    label: str,
    log: Log,
    failures: dict[str, str],
) -> int:
    """Send one batch (its groups, in order); returns the calls made. A batch Route 53 refuses
    as invalid (one bad value or name) is sent again in halves, down to the group at fault, so
    only that record set fails, not the up to 1,000 others packed with it: a handful of extra
    calls per bad group. Any other error (throttled to the end, access denied) fails it whole."""
    batch = [change for piece in pieces for change in piece]
    try:
        client.change(zone_id, [change.to_aws() for change in batch])
    except Route53Error as exc:
        if exc.code == "InvalidChangeBatch" and len(pieces) > 1:
            log(f"{label} refused as invalid, sent again in halves: {exc}")
            half = len(pieces) // 2
            return 1 + sum(
                _send(client, zone_id, part, f"{label} (part)", log, failures)
                for part in (pieces[:half], pieces[half:])
            )
        log(f"{label} refused: {exc}")
        for change in batch:
            for record_id in change.record_ids:
                failures[record_id] = str(exc)[:2000]
        return 1
    log(f"{label} applied ({len(batch)} changes)")
    return 1


def _record_outcomes(
    records: list[RecordSet],
    plan: reconcile.Plan,
    failures: dict[str, str],
    waiting: set[str],
    snapshot_at: Any,
) -> int:
    """Write each record set's status/owner/last_error, grouped into a few UPDATEs; rows
    changed since the run read them keep their new state. Returns rows written."""
    conflicts = {c.record_id: c.reason for c in plan.conflicts}
    accepted = set(plan.accepted)
    outcome: dict[tuple[str, str, str], list[uuid.UUID]] = defaultdict(list)
    for record in records:
        rid = str(record.pk)
        if rid in conflicts:
            key = (RecordSet.Status.FAILED, RecordSet.Owner.EXTERNAL, conflicts[rid])
        elif rid in failures:
            key = (RecordSet.Status.FAILED, RecordSet.Owner.UNKNOWN, failures[rid])
        elif rid in waiting or rid not in accepted:
            continue
        else:
            key = (RecordSet.Status.READY, RecordSet.Owner.AUTOGLUE, "")
        outcome[key].append(record.pk)
    written = 0
    now = timezone.now()
    for (status, owner, error), ids in outcome.items():
        for start in range(0, len(ids), 5000):
            written += (
                RecordSet.objects.filter(
                    pk__in=ids[start : start + 5000], updated_at__lte=snapshot_at
                )
                .exclude(status=status, owner=owner, last_error=error)
                .update(status=status, owner=owner, last_error=error, updated_at=now)
            )
    return written


def _refuse_stale_plan(plan: DNSPlan, zone_digest: str, desired_digest: str) -> None:
    """A plan is applied only to the zone and record sets it was computed from."""
    if (zone_digest, desired_digest) == (plan.zone_digest, plan.desired_digest):
        return
    what = "zone" if zone_digest != plan.zone_digest else "record sets"
    DNSPlan.objects.filter(pk=plan.pk).update(
        status=DNSPlan.Status.STALE,
        error=f"the {what} changed since the plan",
        updated_at=timezone.now(),
    )
    raise JobFailed(f"plan refused: the {what} changed since the plan")


def _plan_finished(plan: DNSPlan | None, failures: dict[str, str]) -> None:
    if plan is None:
        return
    DNSPlan.objects.filter(pk=plan.pk).update(
        status=DNSPlan.Status.FAILED if failures else DNSPlan.Status.APPLIED,
        applied_at=timezone.now(),
        error=f"{len(failures)} record sets failed" if failures else "",
        updated_at=timezone.now(),
    )


def domain_reconcile(
    *,
    # A job's subject may be unset; no row is found then, as for a deleted domain.
    domain_id: uuid.UUID | None,
    mode: str = "auto",
    plan_id: str | None = None,
    log: Log,
    check: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """One reconcile of a domain: check its zone if needed, read the zone, compare, apply (or,
    under "require plan", only report), and record each record set's outcome."""
    domain = (
        Domain.objects.select_related("credential").filter(pk=domain_id).first()
        if domain_id
        else None
    )
    if domain is None:
        log("the domain was deleted; nothing to do")
        return {}
    client = Route53Client.for_credential(domain.credential)
    if domain.status != Domain.Status.READY or not domain.zone_name:
        _domain_verify(domain, client, log)
    stored_plan = DNSPlan.objects.filter(pk=plan_id, domain=domain).first() if plan_id else None
    if mode == "plan" and stored_plan is None:
        raise JobFailed("the plan no longer exists")
    with _zone_lock(domain.zone_id, check, log):
        snapshot_at = timezone.now()
        records = _domain_records(domain)
        try:
            rrsets = list(client.list_rrsets(domain.zone_id))
        except Route53Error as exc:
            raise JobFailed(str(exc)) from None
        plan, zone_digest, desired_digest = _compute(domain, records, rrsets)
        log(
            f"zone {domain.zone_id}: {len(rrsets)} record sets read, {len(records)} wanted; "
            + ", ".join(f"{k} {v}" for k, v in plan.summary().items())
        )
        for item in plan.conflicts:
            log(f"conflict {item.type} {item.fqdn}: {item.reason}")
        waiting: set[str] = set()
        failures: dict[str, str] = {}
        calls = 0
        if stored_plan is not None:
            _refuse_stale_plan(stored_plan, zone_digest, desired_digest)
        _plans_mark_stale(domain.pk, zone_digest=zone_digest, desired_digest=desired_digest)
        if mode == "auto" and plan.changes and _requires_plan(domain.organization_id):
            log(f"{len(plan.changes)} changes wait for a plan to be applied (require plan is on)")
            waiting = {rid for change in plan.changes for rid in change.record_ids}
        elif plan.changes:
            failures, calls = _apply(client, domain.zone_id, plan, log, check)
        else:
            log("nothing to change")
        written = _record_outcomes(records, plan, failures, waiting, snapshot_at)
        Domain.objects.filter(pk=domain.pk).update(last_reconciled_at=timezone.now())
    _plan_finished(stored_plan, failures)
    result = {
        **plan.summary(),
        "change_calls": calls,
        "failed": len(failures),
        "statuses_written": written,
    }
    if failures:
        raise JobFailed(f"{len(failures)} record sets could not be applied; see their last_error")
    return result


def domain_purge(
    *,
    organization_id: uuid.UUID,
    zone_id: str,
    credential_id: uuid.UUID,
    domain_name: str,
    log: Log,
    check: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Remove from a zone every record set this organization's markers claim under
    `domain_name`, except those a live domain of the organization still wants there (the same
    name may have been registered again). Runs after the domain row is gone."""
    credential = Credential.objects.for_org(organization_id).filter(pk=credential_id).first()
    if credential is None:
        raise JobFailed("the domain's credential was deleted; its records stay in Route 53")
    client = Route53Client.for_credential(credential)
    try:
        # The zone id may never have been checked (a domain whose zone check failed): prove the
        # credential reaches the zone before taking its lock, so a zone id alone (another
        # account's) neither holds up that zone's reconciles nor shows their activity here.
        client.zone_name(zone_id)
    except Route53Error as exc:
        raise JobFailed(str(exc)) from None
    with _zone_lock(zone_id, check, log):
        try:
            rrsets = list(client.list_rrsets(zone_id))
        except Route53Error as exc:
            raise JobFailed(str(exc)) from None
        # Domains of the organization still using this zone keep what they want.
        wanted: list[reconcile.Wanted] = []
        for other in Domain.objects.filter(organization_id=organization_id, zone_id=zone_id):
            wanted += _wanted(other, _domain_records(other))
        plan = reconcile.compute_plan(
            zone_rrsets=rrsets,
            wanted=[w for w in wanted if reconcile.in_domain(w.fqdn, domain_name)],
            org_id=str(organization_id),
            domain_name=domain_name,
            zone_name=domain_name,
            marker_key=dns_marker_key(organization_id=organization_id),
        )
        # Only removals: what a live domain wants is that domain's own reconcile's business.
        plan.groups = [
            deletes
            for deletes in (
                [c for c in group if c.action == reconcile.DELETE] for group in plan.groups
            )
            if deletes
        ]
        log(f"zone {zone_id}: {len(plan.changes)} owned record sets to remove under {domain_name}")
        failures, calls = _apply(client, zone_id, plan, log, check) if plan.changes else ({}, 0)
    if failures:
        raise JobFailed("some records could not be removed; see the log")
    return {"deleted": len(plan.changes), "change_calls": calls}


def dns_reconcile_tick() -> int:
    """The schedule: queue a reconcile for every domain that needs one — pending, with pending
    record sets (unless its organization requires plans), or not read for
    DNS_DRIFT_CHECK_SECONDS. Returns how many were queued."""
    stale = timezone.now() - timedelta(seconds=settings.DNS_DRIFT_CHECK_SECONDS)
    pending_records = RecordSet.objects.filter(
        domain=OuterRef("pk"), status=RecordSet.Status.PENDING
    )
    requires_plan = DNSSettings.objects.filter(
        organization_id=OuterRef("organization_id"), require_plan=True
    )
    # Cross-org read: the schedule serves every organization's domains.
    domains = (
        Domain.objects.annotate(
            has_pending=Exists(pending_records), needs_plan=Exists(requires_plan)
        )
        .filter(
            Q(status=Domain.Status.PENDING)
            | Q(status=Domain.Status.READY, has_pending=True, needs_plan=False)
            | Q(status=Domain.Status.READY, last_reconciled_at__isnull=True)
            | Q(status=Domain.Status.READY, last_reconciled_at__lt=stale)
        )
        .order_by("last_reconciled_at")
        .only("pk", "organization_id")[: settings.DNS_TICK_MAX_DOMAINS]
    )
    queued = 0
    for domain in domains:
        with transaction.atomic():
            queued += domain_reconcile_enqueue(domain=domain) is not None
    return queued


def dns_job_failed(job: JobRun, status: str, error: str) -> None:
    """A reconcile that ended badly before its domain's zone was checked leaves the domain
    `failed` with the error; a ready domain keeps its status (record sets carry their own
    errors)."""
    if job.subject_id is None or job.kind != RECONCILE_KIND:
        return
    Domain.objects.filter(
        pk=job.subject_id, status__in=[Domain.Status.PENDING, Domain.Status.PROVISIONING]
    ).update(status=Domain.Status.FAILED, last_error=error[:2000], updated_at=timezone.now())
    if job.payload.get("plan_id"):
        DNSPlan.objects.filter(pk=job.payload["plan_id"], status=DNSPlan.Status.APPLYING).update(
            status=DNSPlan.Status.FAILED, error=error[:2000], updated_at=timezone.now()
        )

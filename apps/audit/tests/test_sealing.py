"""Entries are written unsealed by the request and sealed right after it commits: writers in one
organization never wait on each other's audit entries, the chain stays whole, and a row that
did not come through `audit_record` is never sealed as if it had."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from apps.audit import events, services, tasks
from apps.audit.chain import entry_hash, entry_mac
from apps.audit.models import AuditChainHead, AuditEntry
from apps.audit.services import audit_record, audit_seal_pending, audit_verify, chain_name
from apps.audit.tests.support import sealed
from apps.orgs.tests.factories import OrganizationFactory


def _report(org):
    (report,) = audit_verify(organization_id=org.pk)
    return report


def _forged(org, *, mac: str) -> AuditEntry:
    """A row audit_record never wrote (not saved yet)."""
    return AuditEntry(
        chain=chain_name(org.pk),
        occurred_at=timezone.now(),
        organization_id=org.pk,
        event=events.RESOURCE_DELETE,
        actor_type="user",
        object_id="2",
        mac=mac,
    )


@pytest.mark.django_db(transaction=True)
def test_a_writer_holding_its_transaction_open_does_not_make_another_in_its_org_wait():
    org = OrganizationFactory()
    holding, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        try:
            with transaction.atomic():
                audit_record(event=events.RESOURCE_UPDATE, organization_id=org.pk, object_id="a")
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=slow_writer)
    thread.start()
    try:
        assert holding.wait(10)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '500ms'")
            audit_record(event=events.RESOURCE_UPDATE, organization_id=org.pk, object_id="b")
    finally:
        release.set()
        thread.join(10)

    report = _report(org)
    assert report.ok and report.unsealed == 0
    objects = AuditEntry.objects.filter(chain=chain_name(org.pk), object_id__in=["a", "b"])
    # "b" committed first, so it was sealed first.
    assert list(objects.order_by("seq").values_list("object_id", flat=True)) == ["b", "a"]


@pytest.mark.django_db(transaction=True)
def test_an_entry_is_sealed_as_soon_as_its_transaction_commits():
    org = OrganizationFactory()
    with transaction.atomic():
        entries = [
            audit_record(event=events.RESOURCE_UPDATE, organization_id=org.pk, object_id=str(i))
            for i in range(3)
        ]
        assert all(e.seq is None for e in AuditEntry.objects.filter(pk__in=[e.pk for e in entries]))

    stored = list(AuditEntry.objects.filter(chain=chain_name(org.pk)).order_by("seq"))
    assert [e.seq for e in stored] == [1, 2, 3, 4]  # the organization's creation is first
    assert all(b.prev_hash == a.hash for a, b in zip(stored, stored[1:], strict=False))
    assert _report(org).ok


@pytest.mark.django_db
def test_verify_reports_the_unsealed_tail_without_calling_the_chain_broken(org):
    sealed()
    audit_record(event=events.RESOURCE_UPDATE, organization_id=org.pk)
    audit_record(event=events.RESOURCE_UPDATE, organization_id=org.pk)

    report = _report(org)

    assert report.ok
    assert report.unsealed == 2 and report.unsealed_since is not None
    out = StringIO()
    call_command("audit", "verify", "--org", str(org.pk), stdout=out)
    assert "2 unsealed since" in out.getvalue()


@pytest.mark.django_db
def test_a_row_inserted_behind_the_services_back_is_never_sealed_and_breaks_verify(org):
    sealed()
    genuine = audit_record(event=events.RESOURCE_UPDATE, organization_id=org.pk, object_id="1")
    # A MAC copied from a real entry does not fit another row.
    forged = _forged(org, mac=genuine.mac)
    forged.save()

    audit_seal_pending()

    forged.refresh_from_db()
    genuine.refresh_from_db()
    assert forged.seq is None and forged.hash == ""
    assert genuine.seq is not None
    report = _report(org)
    assert not report.ok
    assert report.broken.entry_id == str(forged.pk) and report.broken.seq is None
    assert "MAC" in report.broken.reason


@pytest.mark.django_db
def test_an_edited_unsealed_entry_is_refused_by_the_sealer_too(org):
    sealed()
    entry = audit_record(event=events.RESOURCE_UPDATE, organization_id=org.pk, object_id="1")
    AuditEntry.objects.filter(pk=entry.pk).update(object_id="2")

    audit_seal_pending()

    assert AuditEntry.objects.get(pk=entry.pk).seq is None
    assert _report(org).broken.entry_id == str(entry.pk)


@pytest.mark.django_db
def test_the_catch_up_task_seals_what_no_sealer_ran_for(org):
    audit_record(event=events.RESOURCE_UPDATE, organization_id=org.pk)
    audit_record(event=events.RESOURCE_UPDATE, organization_id=None)
    assert AuditEntry.objects.filter(seq__isnull=True).count() >= 2

    assert tasks.audit_seal() >= 2

    assert not AuditEntry.objects.filter(seq__isnull=True).exists()
    assert all(report.ok and not report.unsealed for report in audit_verify())


@pytest.mark.django_db
def test_a_new_chain_waiting_for_its_first_seal_is_reported_not_broken():
    chain_org = uuid.uuid4()
    audit_record(event=events.RESOURCE_UPDATE, organization_id=chain_org)

    (report,) = audit_verify(organization_id=chain_org)

    assert report.ok and report.unsealed == 1 and report.entries == 0


def _forge_sealed_tail(org, entry: AuditEntry) -> None:
    """Give `entry` the next place in its chain with a correct hash and move the head to it, as
    someone with write access to the database (but not SECRET_KEY) could."""

    head = AuditChainHead.objects.get(chain=chain_name(org.pk))
    entry.seq, entry.prev_hash = head.seq + 1, head.last_hash
    entry.hash = entry_hash(entry)
    entry.save()
    AuditChainHead.objects.filter(pk=head.pk).update(seq=entry.seq, last_hash=entry.hash)


@pytest.mark.django_db
def test_a_row_inserted_already_sealed_breaks_verify(org):
    genuine = audit_record(event=events.RESOURCE_UPDATE, organization_id=org.pk, object_id="1")
    sealed([genuine])
    forged = _forged(org, mac=genuine.mac)
    _forge_sealed_tail(org, forged)

    report = _report(org)

    assert not report.ok
    assert report.broken.entry_id == str(forged.pk) and report.broken.seq == forged.seq
    assert "MAC" in report.broken.reason


@pytest.mark.django_db
def test_a_sealed_row_edited_and_re_hashed_breaks_verify(org):
    (entry,) = sealed([audit_record(event=events.RESOURCE_UPDATE, organization_id=org.pk)])

    entry.object_id = "someone-else"
    entry.hash = entry_hash(entry)
    entry.save()
    AuditChainHead.objects.filter(chain=chain_name(org.pk)).update(last_hash=entry.hash)

    report = _report(org)

    assert not report.ok
    assert report.broken.entry_id == str(entry.pk) and report.broken.seq == entry.seq
    assert "MAC" in report.broken.reason


@pytest.mark.django_db
def test_a_pruned_entry_inserted_again_is_never_sealed_again(org, settings, caplog, monkeypatch):
    sealed()
    entry = audit_record(event=events.RESOURCE_UPDATE, organization_id=org.pk, object_id="1")
    # A genuine entry written and sealed 500 days ago, as audit_record and the sealer did then.
    entry.occurred_at = timezone.now() - timedelta(days=500)
    entry.mac = entry_mac(entry)
    entry.save()
    with monkeypatch.context() as then:
        then.setattr(services, "UNSEALED_MAX_AGE", timedelta(days=501), raising=False)
        (entry,) = sealed([entry])
    assert entry.seq is not None
    settings.AUDIT_RETENTION_DAYS = 400
    assert services.audit_prune() >= 1
    assert _report(org).ok
    # Someone kept a copy of the row and puts it back, unsealed, with its valid MAC.
    entry.seq, entry.prev_hash, entry.hash = None, "", ""
    entry.save(force_insert=True)

    audit_seal_pending()

    assert AuditEntry.objects.get(pk=entry.pk).seq is None
    assert any(r.getMessage() == "audit_forged_entry" for r in caplog.records)
    report = _report(org)
    assert not report.ok and report.broken.entry_id == str(entry.pk)

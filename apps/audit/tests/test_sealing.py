"""Entries are written unsealed by the request and sealed right after it commits: writers in one
organization never wait on each other's audit entries, the chain stays whole, and a row that
did not come through `audit_record` is never sealed as if it had."""

from __future__ import annotations

import threading
import uuid
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from apps.audit import events, tasks
from apps.audit.models import AuditEntry
from apps.audit.services import audit_record, audit_seal_pending, audit_verify, chain_name
from apps.audit.tests.support import sealed
from apps.orgs.tests.factories import OrganizationFactory


def _report(org):
    (report,) = audit_verify(organization_id=org.pk)
    return report


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
    forged = AuditEntry.objects.create(
        chain=chain_name(org.pk),
        occurred_at=timezone.now(),
        organization_id=org.pk,
        event=events.RESOURCE_DELETE,
        actor_type="user",
        object_id="2",
        mac=genuine.mac,  # a MAC copied from a real entry does not fit another row
    )

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

"""The hash chains: verify finds the first broken link (an edited, deleted or moved row, or a
cut-off end), and concurrent writers in one organization never fork a chain."""

from __future__ import annotations

import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections

from apps.accounts.tests.factories import UserFactory
from apps.audit import events
from apps.audit.models import AuditChainHead, AuditEntry
from apps.audit.services import audit_prune, audit_record, audit_verify, chain_name
from apps.audit.tests.support import sealed
from apps.orgs.tests.factories import OrganizationFactory


def _write(org, n: int) -> list[AuditEntry]:
    written = [
        audit_record(
            event=events.RESOURCE_UPDATE,
            organization_id=org.pk,
            object_type="clusters.label",
            object_id=str(i),
            changes={"value": {"before": str(i), "after": str(i + 1)}},
        )
        for i in range(n)
    ]
    return sealed(written)


def _broken(org):
    (report,) = audit_verify(organization_id=org.pk)
    return report.broken


@pytest.mark.django_db
def test_an_untouched_chain_verifies_and_links_each_entry_to_the_last(org):
    entries = _write(org, 5)

    assert _broken(org) is None
    first = entries[0].seq
    assert [e.seq for e in entries] == list(range(first, first + 5))
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:], strict=False))


@pytest.mark.django_db
def test_editing_one_row_breaks_verification_at_exactly_that_row(org):
    entries = _write(org, 5)
    AuditEntry.objects.filter(pk=entries[2].pk).update(actor_label="someone else")

    broken = _broken(org)

    assert (broken.seq, broken.entry_id) == (entries[2].seq, str(entries[2].pk))
    assert "hash" in broken.reason


@pytest.mark.django_db
def test_editing_a_diff_inside_the_json_is_caught_too(org):
    entries = _write(org, 3)
    AuditEntry.objects.filter(pk=entries[1].pk).update(
        changes={"value": {"before": "1", "after": "999"}}
    )

    assert _broken(org).seq == entries[1].seq


@pytest.mark.django_db
def test_deleting_one_row_breaks_verification_at_its_place(org):
    entries = _write(org, 5)
    AuditEntry.objects.filter(pk=entries[1].pk).delete()

    broken = _broken(org)

    assert broken.seq == entries[1].seq and "missing" in broken.reason


@pytest.mark.django_db
def test_swapping_two_rows_breaks_verification_at_the_first_moved_row(org):
    entries = _write(org, 5)
    a, b = entries[1], entries[2]
    AuditEntry.objects.filter(pk=a.pk).update(seq=-1)
    AuditEntry.objects.filter(pk=b.pk).update(seq=a.seq)
    AuditEntry.objects.filter(pk=a.pk).update(seq=b.seq)

    assert _broken(org).seq == a.seq


@pytest.mark.django_db
def test_cutting_entries_off_the_end_is_caught_by_the_head(org):
    entries = _write(org, 4)
    AuditEntry.objects.filter(pk=entries[-1].pk).delete()

    broken = _broken(org)

    assert broken.seq == entries[-1].seq and "head" in broken.reason


@pytest.mark.django_db
def test_each_org_has_its_own_chain_and_tampering_in_one_leaves_the_other_valid(org, other_org):
    mine = _write(org, 3)
    _write(other_org, 3)
    AuditEntry.objects.filter(pk=mine[0].pk).update(event="auth.sign_in")

    assert _broken(org).seq == mine[0].seq
    assert _broken(other_org) is None


@pytest.mark.django_db
def test_the_verify_command_reports_the_broken_chain_and_exits_non_zero(org, other_org):
    entries = _write(org, 3)
    _write(other_org, 2)
    audit_record(event=events.AUTH_SIGN_IN, object_type="accounts.user")
    out = StringIO()
    call_command("audit", "verify", stdout=out)
    assert "BROKEN" not in out.getvalue() and "ok      platform" in out.getvalue()

    AuditEntry.objects.filter(pk=entries[1].pk).update(ip="10.9.9.9")
    out = StringIO()
    with pytest.raises(CommandError):
        call_command("audit", "verify", stdout=out)

    assert f"BROKEN  org:{org.pk} at seq {entries[1].seq} (entry {entries[1].pk})" in (
        out.getvalue()
    )
    assert f"ok      org:{other_org.pk}" in out.getvalue()


@pytest.mark.django_db
def test_the_admin_route_reports_the_first_broken_link_to_platform_admins_only(
    client_for, org, member
):
    entries = _write(org, 3)
    AuditEntry.objects.filter(pk=entries[2].pk).update(object_id="forged")
    root = client_for(UserFactory(is_admin=True))

    body = root.get("/api/v1/admin/audit/verify").json()

    assert body["ok"] is False
    (chain,) = [c for c in body["chains"] if c["chain"] == chain_name(org.pk)]
    assert chain["broken"]["seq"] == entries[2].seq
    assert chain["broken"]["entry_id"] == str(entries[2].pk)
    assert client_for(member, org).get("/api/v1/admin/audit/verify").status_code == 403


@pytest.mark.django_db
def test_pruning_old_entries_keeps_the_rest_of_the_chain_verifiable(org, settings):
    from datetime import timedelta

    from django.utils import timezone

    entries = _write(org, 5)
    # Everything up to the second write is old (the org's own creation entry included). Those
    # rows no longer hash as written; retention removes them, and the chain resumes from the
    # head's recorded base.
    AuditEntry.objects.filter(chain=chain_name(org.pk), seq__lte=entries[1].seq).update(
        occurred_at=timezone.now() - timedelta(days=500)
    )
    settings.AUDIT_RETENTION_DAYS = 400
    assert audit_prune() == entries[1].seq

    assert AuditEntry.objects.filter(chain=chain_name(org.pk)).count() == 3
    assert _broken(org) is None
    assert AuditChainHead.objects.get(chain=chain_name(org.pk)).base_seq == entries[1].seq


@pytest.mark.django_db(transaction=True)
def test_concurrent_writers_in_one_org_never_fork_the_chain():
    org = OrganizationFactory()
    writers, per_writer = 6, 10
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            barrier.wait()
            for i in range(per_writer):
                audit_record(event=events.RESOURCE_UPDATE, organization_id=org.pk, object_id=str(i))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=write) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    seqs = list(
        AuditEntry.objects.filter(chain=chain_name(org.pk))
        .order_by("seq")
        .values_list("seq", flat=True)
    )
    # The organization's own creation is entry 1.
    assert seqs == list(range(1, writers * per_writer + 2))
    assert _broken(org) is None
    assert connection.vendor == "postgresql"

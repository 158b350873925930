"""Org admins list, filter, page and export their organization's audit entries; nobody else
sees them."""

from __future__ import annotations

import json

import pytest

from apps.audit import events
from apps.audit.services import audit_record
from apps.audit.tests.support import sealed

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_api(client_for, admin_user, org):
    return client_for(admin_user, org)


def _write(org, n: int, event: str = events.RESOURCE_UPDATE) -> None:
    for i in range(n):
        audit_record(event=event, organization_id=org.pk, object_type="clusters.label", object_id=i)
    sealed()


def test_admins_list_their_orgs_entries_newest_first(admin_api, org, other_org):
    _write(org, 3)
    _write(other_org, 2)

    body = admin_api.get("/api/v1/audit-entries").json()

    assert [e["seq"] for e in body] == sorted((e["seq"] for e in body), reverse=True)
    assert {e["object_type"] for e in body if e["event"] == events.RESOURCE_UPDATE} == {
        "clusters.label"
    }
    assert len([e for e in body if e["event"] == events.RESOURCE_UPDATE]) == 3


def test_another_orgs_entry_is_out_of_reach(admin_api, other_org):
    foreign = audit_record(event=events.RESOURCE_UPDATE, organization_id=other_org.pk)

    assert admin_api.get(f"/api/v1/audit-entries/{foreign.pk}").status_code == 404
    assert str(foreign.pk) not in admin_api.get("/api/v1/audit-entries").content.decode()
    assert str(foreign.pk) not in admin_api.get("/api/v1/audit-entries/export").getvalue().decode()


def test_members_viewers_and_org_keys_cannot_read_the_log(
    api, client_for, viewer, org, org_key_client
):
    assert api.get("/api/v1/audit-entries").status_code == 403
    assert client_for(viewer, org).get("/api/v1/audit-entries").status_code == 403
    assert org_key_client(org).get("/api/v1/audit-entries/export").status_code == 403


def test_filters_narrow_the_list(admin_api, org):
    _write(org, 2)
    _write(org, 1, event=events.SECRET_REVEAL)

    reveals = admin_api.get("/api/v1/audit-entries", {"event": events.SECRET_REVEAL}).json()
    by_object = admin_api.get("/api/v1/audit-entries", {"object_id": "1"}).json()

    assert [e["event"] for e in reveals] == [events.SECRET_REVEAL]
    assert {e["object_id"] for e in by_object} == {"1"}


def test_cursor_paging_walks_every_entry_once(admin_api, org, django_assert_max_num_queries):
    _write(org, 7)
    seen, url = [], "/api/v1/audit-entries?limit=3"
    while url:
        with django_assert_max_num_queries(8):
            response = admin_api.get(url)
        seen += [e["id"] for e in response.json()]
        link = response.headers.get("Link", "")
        url = link[1 : link.index(">")] if link else ""

    assert len(seen) == len(set(seen)) >= 7


def test_export_is_jsonl_oldest_first_with_the_same_filters(admin_api, org):
    _write(org, 3)

    response = admin_api.get("/api/v1/audit-entries/export", {"event": events.RESOURCE_UPDATE})
    lines = response.getvalue().decode().splitlines()

    assert response["Content-Type"] == "application/jsonl"
    rows = [json.loads(line) for line in lines]
    assert [r["object_id"] for r in rows] == ["0", "1", "2"]
    assert all(b["prev_hash"] == a["hash"] for a, b in zip(rows, rows[1:], strict=False))


def test_the_list_has_no_write_routes(admin_api, org):
    entry = audit_record(event=events.RESOURCE_UPDATE, organization_id=org.pk)

    assert admin_api.delete(f"/api/v1/audit-entries/{entry.pk}").status_code == 405
    patched = admin_api.patch(f"/api/v1/audit-entries/{entry.pk}", {}, format="json")
    assert patched.status_code == 405

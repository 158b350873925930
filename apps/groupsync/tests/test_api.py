"""The owners' API for group sync: /group-sync and /group-mappings."""

from __future__ import annotations

import json

import pytest

from apps.audit.models import AuditEntry
from apps.groupsync.models import GroupRoleMapping, GroupSyncSettings
from apps.groupsync.tests.factories import GroupRoleMappingFactory
from apps.groupsync.tests.google_standin import ADMIN, CLIENT_EMAIL, service_account_json

CANARY = "CANARY-not-a-key"


@pytest.fixture
def owner_api(client_for, owner, org):
    return client_for(owner, org)


def test_an_owner_stores_the_key_and_never_reads_it_back(owner_api, org):
    response = owner_api.patch(
        "/api/v1/group-sync",
        {
            "service_account_key": service_account_json(),
            "delegated_subject": ADMIN,
            "mode": "authoritative",
            "enabled": True,
        },
        format="json",
    )

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["service_account_key_set"] is True
    assert body["service_account_email"] == CLIENT_EMAIL
    assert (body["enabled"], body["mode"], body["delegated_subject"]) == (
        True,
        "authoritative",
        ADMIN,
    )
    assert "PRIVATE KEY" not in response.content.decode()
    assert "PRIVATE KEY" not in owner_api.get("/api/v1/group-sync").content.decode()
    stored = GroupSyncSettings.objects.get(organization=org)
    assert json.loads(str(stored.service_account_key))["client_email"] == CLIENT_EMAIL
    # Encrypted at rest: the column holds no part of the key.
    raw = GroupSyncSettings.objects.filter(pk=stored.pk).values_list(
        "service_account_key", flat=True
    )
    assert "PRIVATE KEY" not in str(raw[0])
    entries = AuditEntry.objects.filter(object_type="groupsync.groupsyncsettings")
    assert entries.exists()
    assert "PRIVATE KEY" not in json.dumps([e.changes for e in entries])


def test_a_key_that_is_not_a_service_account_key_is_a_400_that_does_not_quote_it(owner_api):
    response = owner_api.patch("/api/v1/group-sync", {"service_account_key": CANARY}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert response.json()["message"].startswith("service_account_key:")
    assert CANARY not in response.content.decode()


def test_sync_cannot_be_turned_on_without_a_key_and_a_subject(owner_api, org):
    response = owner_api.patch("/api/v1/group-sync", {"enabled": True}, format="json")

    assert response.status_code == 400
    assert response.json()["message"].startswith("enabled:")
    assert not GroupSyncSettings.objects.filter(organization=org, enabled=True).exists()


def test_an_admin_may_neither_read_nor_change_group_sync(client_for, admin_user, org):
    api = client_for(admin_user, org)

    assert api.get("/api/v1/group-sync").status_code == 403
    assert api.get("/api/v1/group-mappings").status_code == 403
    response = api.post(
        "/api/v1/group-mappings", {"group_email": "x@acme.example", "role": "owner"}, format="json"
    )
    assert response.status_code == 403
    assert not GroupRoleMapping.objects.exists()


def test_an_owner_maps_groups_to_roles(owner_api, org):
    created = owner_api.post(
        "/api/v1/group-mappings",
        {"group_email": "Eng@Acme.example", "role": "member"},
        format="json",
    )
    assert created.status_code == 201, created.content
    mapping_id = created.json()["id"]
    assert created.json()["group_email"] == "eng@acme.example"

    unconfirmed = owner_api.patch(
        f"/api/v1/group-mappings/{mapping_id}", {"role": "admin"}, format="json"
    )
    assert unconfirmed.status_code == 400
    assert unconfirmed.json()["message"].startswith("confirm_privileged:")
    changed = owner_api.patch(
        f"/api/v1/group-mappings/{mapping_id}",
        {"role": "admin", "confirm_privileged": True},
        format="json",
    )
    assert changed.status_code == 200
    assert [
        (m["group_email"], m["role"]) for m in owner_api.get("/api/v1/group-mappings").json()
    ] == [("eng@acme.example", "admin")]

    again = owner_api.post(
        "/api/v1/group-mappings",
        {"group_email": "eng@acme.example", "role": "viewer"},
        format="json",
    )
    assert again.status_code == 409
    assert again.json()["code"] == "mapping_exists"

    bad = owner_api.post(
        "/api/v1/group-mappings", {"group_email": "eng", "role": "emperor"}, format="json"
    )
    assert bad.status_code == 400
    assert "group_email" in bad.json()["message"] and "role" in bad.json()["message"]

    assert owner_api.delete(f"/api/v1/group-mappings/{mapping_id}").status_code == 204
    assert not GroupRoleMapping.objects.filter(organization=org).exists()


def test_another_organizations_mapping_and_settings_are_out_of_reach(owner_api, org, other_org):
    theirs = GroupRoleMappingFactory(organization=other_org, group_email="ops@globex.example")
    GroupSyncSettings.objects.create(organization=other_org, delegated_subject="a@globex.example")

    assert owner_api.get(f"/api/v1/group-mappings/{theirs.pk}").status_code == 404
    assert (
        owner_api.patch(
            f"/api/v1/group-mappings/{theirs.pk}", {"role": "owner"}, format="json"
        ).status_code
        == 404
    )
    assert owner_api.delete(f"/api/v1/group-mappings/{theirs.pk}").status_code == 404
    assert owner_api.get("/api/v1/group-mappings").json() == []
    assert owner_api.get("/api/v1/group-sync").json()["delegated_subject"] == ""
    theirs.refresh_from_db()
    assert theirs.role == "member"


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_mapping_a_group_to_owner_or_admin_needs_an_explicit_confirmation(owner_api, org, role):
    refused = owner_api.post(
        "/api/v1/group-mappings", {"group_email": "all@acme.example", "role": role}, format="json"
    )

    assert refused.status_code == 400
    assert refused.json()["code"] == "validation_error"
    assert refused.json()["message"].startswith("confirm_privileged:")
    assert not GroupRoleMapping.objects.exists()

    confirmed = owner_api.post(
        "/api/v1/group-mappings",
        {"group_email": "all@acme.example", "role": role, "confirm_privileged": True},
        format="json",
    )
    assert confirmed.status_code == 201

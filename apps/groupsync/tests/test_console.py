"""The console pages for Workspace groups save through the API's services, owners only."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from apps.groupsync.models import GroupRoleMapping, GroupSyncSettings
from apps.groupsync.tests.google_standin import ADMIN, CLIENT_EMAIL, service_account_json
from apps.orgs.tests.admin_support import console_for, staff_of

pytestmark = pytest.mark.django_db

SETTINGS_ADD = reverse("admin:groupsync_groupsyncsettings_add")
MAPPING_ADD = reverse("admin:groupsync_grouprolemapping_add")


def test_an_owner_stores_the_key_in_the_console_and_it_is_never_shown_again(org):
    console = console_for(staff_of(org, "owner"))
    posted = console.post(
        SETTINGS_ADD,
        {
            "organization": str(org.pk),
            "enabled": "on",
            "mode": "authoritative",
            "delegated_subject": ADMIN,
            "service_account_key": service_account_json(),
        },
    )

    assert posted.status_code == 302, posted.context["adminform"].form.errors
    stored = GroupSyncSettings.objects.get(organization=org)
    assert (stored.enabled, stored.mode, stored.service_account_email) == (
        True,
        "authoritative",
        CLIENT_EMAIL,
    )
    page = console.get(reverse("admin:groupsync_groupsyncsettings_change", args=[stored.pk]))
    assert page.status_code == 200
    assert "PRIVATE KEY" not in page.content.decode()
    assert "set" in page.content.decode()

    # Saving again without a key keeps the stored one.
    kept = console.post(
        reverse("admin:groupsync_groupsyncsettings_change", args=[stored.pk]),
        {"enabled": "on", "mode": "additive", "delegated_subject": ADMIN},
    )
    assert kept.status_code == 302
    stored.refresh_from_db()
    assert stored.mode == "additive"
    assert json.loads(str(stored.service_account_key))["client_email"] == CLIENT_EMAIL


def test_the_console_refuses_what_the_api_refuses(org):
    console = console_for(staff_of(org, "owner"))
    response = console.post(
        SETTINGS_ADD,
        {
            "organization": str(org.pk),
            "mode": "additive",
            "delegated_subject": ADMIN,
            "service_account_key": "CANARY-not-a-key",
        },
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "service_account_key" in errors
    assert "CANARY" not in response.content.decode()
    assert not GroupSyncSettings.objects.exists()

    mapping = console.post(
        MAPPING_ADD, {"organization": str(org.pk), "group_email": "eng", "role": "member"}
    )
    assert mapping.status_code == 200
    assert not GroupRoleMapping.objects.exists()


def test_an_admin_cannot_open_the_group_pages(org):
    console = console_for(staff_of(org, "admin"))

    assert console.get(SETTINGS_ADD).status_code == 403
    assert console.get(MAPPING_ADD).status_code == 403
    posted = console.post(
        MAPPING_ADD, {"organization": str(org.pk), "group_email": "x@acme.example", "role": "owner"}
    )
    assert posted.status_code == 403
    assert not GroupRoleMapping.objects.exists()


def test_an_owner_maps_a_group_in_the_console(org):
    console = console_for(staff_of(org, "owner"))
    posted = console.post(
        MAPPING_ADD,
        {"organization": str(org.pk), "group_email": "Eng@Acme.example", "role": "admin"},
    )
    assert posted.status_code == 200  # not confirmed: the form says why, nothing saved
    assert "confirm that only administrators manage its members" in posted.content.decode()
    assert not GroupRoleMapping.objects.exists()

    posted = console.post(
        MAPPING_ADD,
        {
            "organization": str(org.pk),
            "group_email": "Eng@Acme.example",
            "role": "admin",
            "confirm_privileged": "on",
        },
    )

    assert posted.status_code == 302
    assert GroupRoleMapping.objects.get(organization=org).group_email == "eng@acme.example"

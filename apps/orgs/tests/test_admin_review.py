"""An outside review of the console's tenancy and role rules, read as a hostile operator would:
a defect found (and fixed), or a rule that held and is pinned here (mixed roles: a person with
different roles in two organizations)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.accounts import services as account_services
from apps.accounts.models import APIKey
from apps.infrastructure.models import SSHKey
from apps.infrastructure.tests.factories import SSHKeyFactory
from apps.orgs.tests.admin_support import console_for, form_data, staff_of
from apps.orgs.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def test_a_viewer_in_one_org_cannot_bulk_delete_its_objects_because_they_may_write_in_another(
    org, other_org
):
    theirs = SSHKeyFactory(organization=other_org, name="theirs")
    user = staff_of(org, "member", "mixed@example.com")
    MembershipFactory(user=user, organization=other_org, role="viewer")
    console = console_for(user)

    response = console.post(
        reverse("admin:infrastructure_sshkey_changelist"),
        {"action": "delete_selected", "_selected_action": [str(theirs.pk)], "post": "yes"},
    )

    assert response.status_code in (200, 302, 403)
    assert SSHKey.objects.filter(pk=theirs.pk).exists()


def test_a_revoked_org_key_cannot_be_brought_back_or_its_expiry_moved_from_its_page(org):
    key = account_services.api_key_create_for_org(
        organization=org, name="ci", expires_in_hours=1
    ).key
    account_services.api_key_revoke(key=key)
    key.refresh_from_db()
    revoked_at, expires_at = key.revoked_at, key.expires_at
    console = console_for(staff_of(org, "owner"))
    url = reverse("admin:accounts_apikey_change", args=[key.pk])
    page = console.get(url)
    assert page.status_code == 200
    data = form_data(page)
    data.update(
        {
            "name": "ci",
            "revoked_at_0": "",
            "revoked_at_1": "",
            "expires_at_0": "2099-01-01",
            "expires_at_1": "00:00:00",
        }
    )

    console.post(url, data)

    key = APIKey.objects.get(pk=key.pk)
    assert key.revoked_at == revoked_at
    assert key.expires_at == expires_at

"""Organizations and memberships in the console, with the API's role rules: the owner-only and
last-owner rules of the org services hold, and rotating a data key is an owner's logged action."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry

from apps.core.models import DataKey
from apps.infrastructure.models import SSHKey
from apps.infrastructure.tests.factories import SSHKeyFactory
from apps.orgs.models import Membership
from apps.orgs.tests.admin_support import console_for, form_data, form_errors, staff_of

pytestmark = pytest.mark.django_db


def test_an_org_admin_cannot_make_someone_an_owner(org):
    adam = console_for(staff_of(org, "admin", "adam@acme.example"))
    staff_of(org, "owner", "olivia@acme.example")
    bob = staff_of(org, "viewer", "bob@acme.example")
    membership = Membership.objects.get(user=bob)
    data = form_data(adam.get(f"/admin/orgs/membership/{membership.pk}/change/"))
    data["role"] = "owner"

    response = adam.post(f"/admin/orgs/membership/{membership.pk}/change/", data)

    assert "only an owner may grant" in form_errors(response)
    membership.refresh_from_db()
    assert membership.role == "viewer"


def test_the_last_owner_cannot_be_demoted_from_the_organization_page(org):
    olivia = staff_of(org, "owner", "olivia@acme.example")
    console = console_for(olivia)
    page = console.get(f"/admin/orgs/organization/{org.pk}/change/")
    data = form_data(page)
    prefix = page.context["inline_admin_formsets"][0].formset.prefix
    row = next(
        i
        for i in range(int(data[f"{prefix}-TOTAL_FORMS"]))
        if data[f"{prefix}-{i}-user"] == str(olivia.pk)
    )
    data[f"{prefix}-{row}-role"] = "member"

    response = console.post(f"/admin/orgs/organization/{org.pk}/change/", data)

    assert "last owner" in form_errors(response)
    assert Membership.objects.get(user=olivia).role == "owner"


def test_a_member_sees_the_organization_but_cannot_rename_it(org):
    alice = console_for(staff_of(org, "member", "alice@acme.example"))

    page = alice.get(f"/admin/orgs/organization/{org.pk}/change/")
    posted = alice.post(f"/admin/orgs/organization/{org.pk}/change/", {"name": "Mine now"})

    assert page.status_code == 200 and "Acme" in page.content.decode()
    assert posted.status_code == 403
    org.refresh_from_db()
    assert org.name == "Acme"


def test_rotating_an_organizations_data_key_re_encrypts_its_secrets_and_is_logged(
    org, django_capture_on_commit_callbacks
):
    key = SSHKeyFactory(organization=org)
    private_key = key.private_key
    version_before = DataKey.objects.filter(organization=org).order_by("-version").first().version
    owner = console_for(staff_of(org, "owner", "olivia@acme.example"))

    with django_capture_on_commit_callbacks(execute=True):
        response = owner.post(
            "/admin/orgs/organization/",
            {"action": "rotate_data_key", "_selected_action": [str(org.pk)]},
        )

    assert response.status_code == 302
    newest = DataKey.objects.filter(organization=org).order_by("-version").first()
    assert newest.version == version_before + 1
    stored = SSHKey.objects.filter(pk=key.pk).values_list("private_key", flat=True).get()
    assert str(newest.pk) in stored  # the envelope names the data key that sealed it
    assert SSHKey.objects.get(pk=key.pk).private_key == private_key
    assert LogEntry.objects.filter(object_id=str(org.pk), change_message__contains="data key")


def test_a_member_cannot_rotate_the_data_key(org, django_capture_on_commit_callbacks):
    member = console_for(staff_of(org, "member", "alice@acme.example"))

    with django_capture_on_commit_callbacks() as callbacks:
        member.post(
            "/admin/orgs/organization/",
            {"action": "rotate_data_key", "_selected_action": [str(org.pk)]},
        )

    assert callbacks == []
    assert not LogEntry.objects.filter(change_message__contains="data key").exists()


def test_only_platform_admins_verify_domains(org):
    org.domain = "acme.example"
    org.save()
    owner = console_for(staff_of(org, "owner", "olivia@acme.example"))

    owner.post(
        "/admin/orgs/organization/",
        {"action": "verify_domain", "_selected_action": [str(org.pk)]},
    )

    org.refresh_from_db()
    assert org.domain_verified_at is None

"""Keys and tokens in the console: nothing a service generates can be typed into an Add form;
actions generate, mint, revoke and retire, each leaving a LogEntry."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import ADDITION, LogEntry

from apps.accounts import services
from apps.accounts.models import APIKey, RefreshToken, SigningKey
from apps.accounts.tests.factories import UserFactory
from apps.orgs.tests.admin_support import console_for, staff_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def root():
    return console_for(UserFactory(primary_email="root@autoglue.example", is_admin=True))


@pytest.mark.parametrize("model", ["signingkey", "apikey", "refreshtoken"])
def test_rows_only_a_service_creates_have_no_add_form(root, model):
    page = root.get(f"/admin/accounts/{model}/add/")
    posted = root.post(f"/admin/accounts/{model}/add/", {"kid": "typed", "public_pem": ""})

    assert (page.status_code, posted.status_code) == (403, 403)
    assert not SigningKey.objects.filter(kid="typed").exists()
    assert not APIKey.objects.exists() and not RefreshToken.objects.exists()


def test_generating_a_signing_key_makes_the_new_signer_and_logs_it(root):
    response = root.post("/admin/accounts/signingkey/generate/")

    assert response.status_code == 302
    key = SigningKey.objects.get()
    assert key.is_active and key.private_pem and "PUBLIC KEY" in key.public_pem
    assert LogEntry.objects.filter(object_id=str(key.pk), action_flag=ADDITION).exists()
    page = root.get("/admin/accounts/signingkey/").content.decode()
    assert "Generate a new signing key" in page and key.kid in page


def test_a_signing_keys_material_is_never_editable_or_shown(root):
    key = services.signing_key_generate(bits=2048)

    page = root.get(f"/admin/accounts/signingkey/{key.pk}/change/")
    posted = root.post(f"/admin/accounts/signingkey/{key.pk}/change/", {"is_active": ""})

    assert page.status_code == 200 and "PRIVATE KEY" not in page.content.decode()
    assert posted.status_code == 403
    key.refresh_from_db()
    assert key.is_active


def test_organization_staff_cannot_generate_signing_keys(org):
    owner = console_for(staff_of(org, "owner"))

    assert owner.post("/admin/accounts/signingkey/generate/").status_code == 403
    assert not SigningKey.objects.exists()


def test_minting_an_org_key_shows_its_secret_once_and_logs_it(org):
    owner = console_for(staff_of(org, "owner"))

    form = owner.get("/admin/accounts/apikey/mint/")
    minted = owner.post(
        "/admin/accounts/apikey/mint/", {"organization": str(org.pk), "name": "terraform"}
    )

    assert form.status_code == 200
    assert minted.status_code == 200 and "no-store" in minted["Cache-Control"]
    key = APIKey.objects.get(name="terraform")
    assert key.organization_id == org.pk and key.scope == "org"
    secret = minted.context["created"].secret
    assert secret in minted.content.decode()
    assert LogEntry.objects.filter(object_id=str(key.pk), action_flag=ADDITION).exists()
    later = owner.get(f"/admin/accounts/apikey/{key.pk}/change/").content.decode()
    assert secret not in later


def test_a_member_cannot_mint_or_revoke_org_keys(org):
    key = services.api_key_create_for_org(organization=org, name="kept").key
    member = console_for(staff_of(org, "member"))

    mint = member.post("/admin/accounts/apikey/mint/", {"organization": str(org.pk)})
    member.post("/admin/accounts/apikey/", {"action": "revoke_keys", "_selected_action": [key.pk]})

    assert mint.status_code == 403
    key.refresh_from_db()
    assert key.revoked_at is None and APIKey.objects.count() == 1


def test_an_owner_cannot_mint_a_key_for_another_organization(org, other_org):
    owner = console_for(staff_of(org, "owner"))

    response = owner.post("/admin/accounts/apikey/mint/", {"organization": str(other_org.pk)})

    assert "organization" in response.context["form"].errors
    assert not APIKey.objects.exists()


def test_revoking_a_key_from_the_console_logs_it(org):
    key = services.api_key_create_for_org(organization=org, name="old").key
    owner = console_for(staff_of(org, "owner"))

    owner.post("/admin/accounts/apikey/", {"action": "revoke_keys", "_selected_action": [key.pk]})

    key.refresh_from_db()
    assert key.revoked_at is not None
    assert LogEntry.objects.filter(object_id=str(key.pk), change_message__contains="Revoked")


def test_the_accounts_section_has_readable_names_and_no_allauth_plumbing(root):
    page = root.get("/admin/").content.decode()

    assert "OAuth identities" in page and "API keys" in page
    assert "Social accounts" not in page and "Groups" not in page


def test_a_person_added_in_the_console_has_a_normalised_address_and_no_password(root):
    from apps.accounts.models import User

    response = root.post(
        "/admin/accounts/user/add/",
        {"primary_email": "New.Person@Acme.Example", "display_name": "New", "avatar_url": ""},
    )

    assert response.status_code == 302
    user = User.objects.get(primary_email="new.person@acme.example")
    assert not user.has_usable_password() and not user.is_admin


def test_minting_a_scoped_org_key_in_the_console_fixes_its_scopes_and_lists_them(org):
    from apps.clusters.tests.factories import ClusterFactory

    cluster = ClusterFactory(organization=org, name="prod")
    owner = console_for(staff_of(org, "owner"))

    minted = owner.post(
        "/admin/accounts/apikey/mint/",
        {
            "organization": str(org.pk),
            "name": "ci",
            "read_only": "on",
            "networks": "10.0.0.0/8, 192.0.2.7/32",
            "clusters": [str(cluster.pk)],
        },
    )

    assert minted.status_code == 200, minted.context["form"].errors
    key = APIKey.objects.get(name="ci")
    assert key.read_only and key.allowed_cidrs == ["10.0.0.0/8", "192.0.2.7/32"]
    assert key.allowed_cluster_ids == [str(cluster.pk)]
    listed = owner.get("/admin/accounts/apikey/").content.decode()
    assert "read-only; from 10.0.0.0/8, 192.0.2.7/32; 1 cluster" in listed


def test_a_console_mint_with_a_bad_network_is_refused_on_the_form(org):
    owner = console_for(staff_of(org, "owner"))

    response = owner.post(
        "/admin/accounts/apikey/mint/", {"organization": str(org.pk), "networks": "lan"}
    )

    assert "allowed_cidrs" in str(response.context["form"].errors)
    assert not APIKey.objects.exists()


def test_a_console_mint_cannot_name_another_organizations_cluster(org, other_org):
    from apps.clusters.tests.factories import ClusterFactory

    theirs = ClusterFactory(organization=other_org)
    owner = console_for(staff_of(org, "owner"))

    response = owner.post(
        "/admin/accounts/apikey/mint/",
        {"organization": str(org.pk), "clusters": [str(theirs.pk)]},
    )

    assert "clusters" in response.context["form"].errors
    assert not APIKey.objects.exists()

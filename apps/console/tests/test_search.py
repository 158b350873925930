"""The header's search box: one term across every kind of object, in any form an operator
pastes, and never another organization's object."""

from __future__ import annotations

import logging

import pytest

from apps.accounts import services as account_services
from apps.accounts.models import APIKey
from apps.accounts.tests.factories import UserFactory
from apps.clusters.tests.factories import ClusterFactory
from apps.console.tests.support import job_run
from apps.infrastructure.tests.factories import ServerFactory
from apps.orgs.models import Membership
from apps.orgs.tests.admin_support import console_for, staff_of

pytestmark = pytest.mark.django_db

SEARCH = "/admin/search/"


@pytest.fixture
def alice(org):
    return staff_of(org, "member", "alice@acme.example")


@pytest.fixture
def leaked(alice, org):
    """Alice's user key, as it would be pasted from a leak."""
    return account_services.api_key_create_for_user(user=alice, name="laptop")


def test_a_server_is_found_by_its_public_ip_and_opens_its_page(alice, org):
    server = ServerFactory(organization=org, hostname="edge-1", public_ip_address="203.0.113.7")
    response = console_for(alice).get(SEARCH, {"q": "203.0.113.7"})
    assert response.status_code == 302
    assert response["Location"] == f"/admin/infrastructure/server/{server.pk}/change/"


def test_servers_are_found_by_part_of_their_hostname_with_their_status(alice, org):
    ServerFactory(organization=org, hostname="edge-1.acme.internal")
    ServerFactory(organization=org, hostname="edge-2.acme.internal")
    response = console_for(alice).get(SEARCH, {"q": "edge-"})
    page = response.content.decode()
    assert response.status_code == 200
    assert "edge-1.acme.internal" in page and "edge-2.acme.internal" in page
    assert "Servers (2)" in page
    assert 'class="ag-badge ag-badge-' in page


def test_the_search_never_returns_another_organizations_objects(alice, org, other_org):
    server = ServerFactory(
        organization=other_org, hostname="globex-db", public_ip_address="198.51.100.9"
    )
    cluster = ClusterFactory(organization=other_org, name="globex-prod")
    theirs = account_services.api_key_create_for_org(organization=other_org, name="globex-ci")
    ServerFactory(organization=org, hostname="acme-db")  # something of Alice's exists
    console = console_for(alice)
    for term in ("globex", "198.51.100.9", theirs.plain, theirs.key.public_id, "db"):
        response = console.get(SEARCH, {"q": term}, follow=True)
        page = response.content.decode()
        assert response.status_code == 200, term
        for obj in (server, cluster, theirs.key):
            assert str(obj.pk) not in page, term
        assert "globex-db" not in page and "globex-prod" not in page, term
    assert "acme-db" in console.get(SEARCH, {"q": "db"}, follow=True).content.decode()


@pytest.mark.parametrize(
    "form",
    ["full key", "key without its secret", "bare id", "bare id in capitals"],
)
def test_a_leaked_user_key_is_found_in_any_pasted_form(alice, leaked, form):
    public_id = leaked.key.public_id
    pasted = {
        "full key": leaked.plain,
        "key without its secret": f"u_{public_id}",
        "bare id": public_id,
        "bare id in capitals": public_id.upper(),
    }[form]
    # Alice's own user key is hers, not an organization's: a platform admin finds it.
    root = console_for(UserFactory(is_admin=True))
    response = root.get(SEARCH, {"q": pasted}, follow=True)
    assert response.redirect_chain[-1][0] == f"/admin/accounts/apikey/{leaked.key.pk}/change/"


def test_an_org_key_pasted_with_its_secret_is_found_by_its_owner(org):
    owner = staff_of(org, "owner", "olivia@acme.example")
    created = account_services.api_key_create_for_org(organization=org, name="ci")
    response = console_for(owner).get(
        SEARCH, {"q": f"{created.plain}:{created.secret}"}, follow=True
    )
    assert response.redirect_chain[-1][0] == f"/admin/accounts/apikey/{created.key.pk}/change/"


def test_a_pasted_secret_leaves_the_address_and_is_never_shown_or_logged(alice, leaked, caplog):
    secret = leaked.plain.split("_", 2)[2]
    root = console_for(UserFactory(is_admin=True))
    with caplog.at_level(logging.DEBUG):
        first = root.get(SEARCH, {"q": leaked.plain})
        assert first.status_code == 302
        assert secret not in first["Location"]
        assert first["Location"] == f"{SEARCH}?q=u_{leaked.key.public_id}"
        page = root.get(first["Location"], follow=True).content.decode()
    assert secret not in page
    assert secret not in caplog.text


def test_the_api_key_list_finds_a_pasted_key_and_drops_its_secret(org, leaked):
    secret = leaked.plain.split("_", 2)[2]
    root = console_for(UserFactory(is_admin=True))
    response = root.get("/admin/accounts/apikey/", {"q": leaked.plain}, follow=True)
    page = response.content.decode()
    assert response.redirect_chain[0][0].endswith(f"q=u_{leaked.key.public_id}")
    assert secret not in page
    assert list(response.context["cl"].result_list) == [leaked.key]
    bare = root.get("/admin/accounts/apikey/", {"q": f"u_{leaked.key.public_id}"})
    assert list(bare.context["cl"].result_list) == [leaked.key]


def test_a_viewer_finds_an_org_key_but_is_offered_no_revoke(org):
    viewer = staff_of(org, Membership.Role.VIEWER, "victor@acme.example")
    org_key = account_services.api_key_create_for_org(organization=org, name="ci")
    console = console_for(viewer)
    response = console.get(SEARCH, {"q": org_key.plain}, follow=True)
    assert response.redirect_chain[-1][0] == f"/admin/accounts/apikey/{org_key.key.pk}/change/"
    assert 'id="revoke-key"' not in response.content.decode()
    revoke = console.post(f"/admin/accounts/apikey/{org_key.key.pk}/revoke/", {"confirm": "yes"})
    assert revoke.status_code == 403
    assert APIKey.objects.get(pk=org_key.key.pk).revoked_at is None


def test_an_empty_or_hostile_search_answers_a_page(alice):
    console = console_for(alice)
    for term in ("", "   ", "%", "'; drop table x; --", "u_", "x" * 5000, "::1", "\u202e"):
        assert console.get(SEARCH, {"q": term}).status_code == 200, term
    assert console.get(SEARCH, {"q": "a\x00b"}).status_code == 400


def test_revoking_a_key_from_its_page_asks_first_then_revokes(org, leaked):
    owner = staff_of(org, "owner", "olivia@acme.example")
    created = account_services.api_key_create_for_org(organization=org, name="ci")
    console = console_for(owner)
    page = console.get(f"/admin/accounts/apikey/{created.key.pk}/change/").content.decode()
    assert 'id="revoke-key"' in page
    url = f"/admin/accounts/apikey/{created.key.pk}/revoke/"
    asked = console.get(url)
    assert asked.status_code == 200
    assert "Yes, revoke it" in asked.content.decode()
    created.key.refresh_from_db()
    assert created.key.revoked_at is None
    # A POST without the confirmation field is the question again, not a revocation.
    assert "Yes, revoke it" in console.post(url).content.decode()
    created.key.refresh_from_db()
    assert created.key.revoked_at is None
    done = console.post(url, {"confirm": "yes"})
    assert done.status_code == 302
    created.key.refresh_from_db()
    assert created.key.revoked_at is not None
    page = console.get(f"/admin/accounts/apikey/{created.key.pk}/change/").content.decode()
    assert 'id="revoke-key"' not in page


def test_the_revoke_list_action_asks_before_revoking(org):
    owner = staff_of(org, "owner", "olivia@acme.example")
    created = account_services.api_key_create_for_org(organization=org, name="ci")
    console = console_for(owner)
    data = {"action": "revoke_keys", "_selected_action": [str(created.key.pk)]}
    asked = console.post("/admin/accounts/apikey/", data)
    assert asked.status_code == 200
    assert "Yes, revoke them" in asked.content.decode()
    assert APIKey.objects.get(pk=created.key.pk).revoked_at is None
    console.post("/admin/accounts/apikey/", {**data, "confirm": "yes"})
    assert APIKey.objects.get(pk=created.key.pk).revoked_at is not None


def test_another_organizations_key_cannot_be_revoked_from_its_page(org, other_org):
    owner = staff_of(org, "owner", "olivia@acme.example")
    theirs = account_services.api_key_create_for_org(organization=other_org, name="globex-ci")
    console = console_for(owner)
    url = f"/admin/accounts/apikey/{theirs.key.pk}/revoke/"
    assert console.get(url).status_code == 302  # "no such key", like any other page
    console.post(url, {"confirm": "yes"})
    assert APIKey.objects.get(pk=theirs.key.pk).revoked_at is None


def test_a_member_without_key_rights_cannot_revoke_an_org_key(org):
    member = staff_of(org, "member", "mia@acme.example")
    created = account_services.api_key_create_for_org(organization=org, name="ci")
    response = console_for(member).post(
        f"/admin/accounts/apikey/{created.key.pk}/revoke/", {"confirm": "yes"}
    )
    assert response.status_code in (302, 403)
    assert APIKey.objects.get(pk=created.key.pk).revoked_at is None


def test_the_favicon_is_served(client):
    response = client.get("/favicon.ico", follow=True)
    assert response.status_code == 200


def test_badges_colour_statuses_and_mark_only_work_under_way_as_active():
    from apps.orgs.console_base import status_badge

    assert 'class="ag-badge ag-badge-error"' in status_badge("failed")
    assert 'class="ag-badge ag-badge-ok"' in status_badge("ready")
    assert 'class="ag-badge ag-badge-busy ag-badge-active"' in status_badge("running")
    assert 'class="ag-badge ag-badge-busy"' in status_badge("pending")
    assert "<script>" not in status_badge("<script>")


PASTED_FORMS = {
    "capital U": lambda plain, pid, secret: f"U_{pid}_{secret}",
    "quoted": lambda plain, pid, secret: f'"{plain}"',
    "as a bearer header": lambda plain, pid, secret: f"Bearer {plain}",
    "id and secret split by a tab": lambda plain, pid, secret: f"u_{pid}\t{secret}",
    "as a header line with its secret": lambda plain, pid, secret: (
        f"X-Org-Key: u_{pid}\nX-Org-Secret: {secret}"
    ),
}


@pytest.mark.parametrize("form", list(PASTED_FORMS))
def test_a_key_pasted_in_any_wrapping_is_redirected_to_its_public_form(leaked, form):
    public_id = leaked.key.public_id
    secret = leaked.plain.split("_", 2)[2]
    pasted = PASTED_FORMS[form](leaked.plain, public_id, secret)
    root = console_for(UserFactory(is_admin=True))
    first = root.get(SEARCH, {"q": pasted})
    assert first.status_code == 302
    assert first["Location"] == f"{SEARCH}?q=u_{public_id}"
    response = root.get(first["Location"], follow=True)
    assert response.redirect_chain[-1][0] == f"/admin/accounts/apikey/{leaked.key.pk}/change/"
    assert secret not in response.content.decode()


def test_an_org_key_header_paste_is_shown_only_by_its_public_form(org):
    owner = staff_of(org, "owner", "olivia@acme.example")
    created = account_services.api_key_create_for_org(organization=org, name="ci")
    pasted = f"X-Org-Key: {created.plain}\tX-Org-Secret: {created.secret}"
    first = console_for(owner).get(SEARCH, {"q": pasted})
    assert first["Location"] == f"{SEARCH}?q={created.plain}"


def test_any_list_search_drops_a_pasted_secret(alice, org, leaked):
    secret = leaked.plain.split("_", 2)[2]
    response = console_for(alice).get(
        "/admin/infrastructure/server/", {"q": f"Bearer {leaked.plain}", "o": "1"}
    )
    assert response.status_code == 302
    assert secret not in response["Location"]
    assert f"q=u_{leaked.key.public_id}" in response["Location"]


def test_every_console_page_loads_the_script_that_strips_a_secret_before_submitting(alice):
    page = console_for(alice).get("/admin/").content.decode()
    assert "console/search_form.js" in page


def test_a_one_character_term_searches_nothing_and_says_why(alice, org):
    ServerFactory(organization=org, hostname="a-1")
    response = console_for(alice).get(SEARCH, {"q": "a"})
    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="ag-search-short"' in page and "a-1" not in page


def test_a_kind_with_many_matches_says_ten_plus_instead_of_counting(alice, org):
    for number in range(12):
        ServerFactory(organization=org, hostname=f"edge-{number:02}")
    page = console_for(alice).get(SEARCH, {"q": "edge-"}).content.decode()
    assert "Servers (10+)" in page
    assert "All matching servers" in page


def test_job_runs_are_found_by_id_or_subject_name_never_by_their_error_text(alice, org):
    server = ServerFactory(organization=org, hostname="edge-7")
    run = job_run(
        kind="server_bootstrap",
        organization_id=org.pk,
        subject_type="server",
        subject_id=server.pk,
        error="connection to edge-9 refused",
    )
    console = console_for(alice)
    by_id = console.get(SEARCH, {"q": str(run.pk)})
    assert by_id["Location"] == f"/admin/jobs/jobrun/{run.pk}/change/"
    assert "Job runs (1)" in console.get(SEARCH, {"q": "edge-7"}).content.decode()
    by_error = console.get(SEARCH, {"q": "edge-9"}).content.decode()
    assert 'id="ag-search-empty"' in by_error and str(run.pk) not in by_error

"""Organizations, members and org API keys (/orgs...), with the last-owner rule."""

from __future__ import annotations

import pytest

from apps.accounts import services as account_services
from apps.accounts.tests.factories import UserFactory
from apps.orgs.models import Membership, Organization
from apps.orgs.tests.factories import MembershipFactory, OrganizationFactory


def test_creating_an_org_makes_the_creator_its_owner(client_for, member):
    response = client_for(member).post(
        "/api/v1/orgs", {"name": "Initech", "domain": "Initech.COM"}, format="json"
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "name", "domain", "created_at", "updated_at"}
    assert body["name"] == "Initech" and body["domain"] == "initech.com"
    assert Membership.objects.get(organization_id=body["id"]).role == "owner"


@pytest.mark.parametrize(
    "payload", [{}, {"name": ""}, {"name": "   "}, {"name": "x", "domain": "no spaces.com"}]
)
def test_invalid_org_input_is_400_naming_the_field(client_for, member, payload):
    response = client_for(member).post("/api/v1/orgs", payload, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"


def test_listing_orgs_shows_only_mine_newest_first(client_for, member, org, other_org):
    newer = OrganizationFactory(name="Newer")
    MembershipFactory(user=member, organization=newer)
    ids = [o["id"] for o in client_for(member).get("/api/v1/orgs").json()]
    assert ids == [str(newer.pk), str(org.pk)]


def test_listing_orgs_costs_the_same_queries_for_many_orgs(
    client_for, member, django_assert_max_num_queries
):
    client = client_for(member)
    with django_assert_max_num_queries(2):
        client.get("/api/v1/orgs")
    for _ in range(15):
        MembershipFactory(user=member)
    with django_assert_max_num_queries(2):
        assert len(client.get("/api/v1/orgs").json()) == 16


def test_members_list_query_count_does_not_grow_with_members(
    client_for, owner, org, django_assert_max_num_queries
):
    client = client_for(owner)
    with django_assert_max_num_queries(3):
        client.get(f"/api/v1/orgs/{org.pk}/members")
    for _ in range(15):
        MembershipFactory(organization=org)
    with django_assert_max_num_queries(3):
        rows = client.get(f"/api/v1/orgs/{org.pk}/members").json()
    assert len(rows) == 16
    assert set(rows[0]) == {"user_id", "email", "role"}


def test_patch_org_renames_and_clearing_the_domain_makes_it_null(client_for, owner, org):
    org.domain = "acme.example"
    org.save()
    response = client_for(owner).patch(
        f"/api/v1/orgs/{org.pk}", {"name": "Acme 2", "domain": ""}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["name"] == "Acme 2" and response.json()["domain"] is None


def test_changing_the_domain_drops_its_verification(client_for, owner, org):
    from django.utils import timezone

    org.domain, org.domain_verified_at = "acme.example", timezone.now()
    org.save()
    client_for(owner).patch(f"/api/v1/orgs/{org.pk}", {"domain": "gmail.com"}, format="json")
    org.refresh_from_db()
    assert org.domain == "gmail.com" and org.domain_verified_at is None


def test_a_verified_domain_is_unique(db):
    from apps.core.api.errors import APIError
    from apps.orgs import services

    first = OrganizationFactory(domain="acme.example")
    second = OrganizationFactory(domain="ACME.example")
    services.organization_verify_domain(organization=first)
    with pytest.raises(APIError) as exc:
        services.organization_verify_domain(organization=second)
    assert exc.value.status_code == 409


def test_owner_deletes_the_org(client_for, owner, org):
    assert client_for(owner).delete(f"/api/v1/orgs/{org.pk}").status_code == 204
    assert not Organization.objects.filter(pk=org.pk).exists()


def test_adding_and_updating_a_member_by_user_id(client_for, admin_user, org):
    newcomer = UserFactory(primary_email="dana@acme.example")
    client = client_for(admin_user)
    added = client.post(
        f"/api/v1/orgs/{org.pk}/members",
        {"user_id": str(newcomer.pk), "role": "viewer"},
        format="json",
    )
    assert added.status_code == 200
    assert added.json() == {
        "user_id": str(newcomer.pk),
        "email": "dana@acme.example",
        "role": "viewer",
    }
    updated = client.post(
        f"/api/v1/orgs/{org.pk}/members",
        {"user_id": str(newcomer.pk), "role": "member"},
        format="json",
    )
    assert updated.json()["role"] == "member"
    assert Membership.objects.filter(user=newcomer, organization=org).count() == 1


def test_an_unknown_role_or_user_is_refused(client_for, owner, org):
    client = client_for(owner)
    bad_role = client.post(
        f"/api/v1/orgs/{org.pk}/members", {"user_id": str(owner.pk), "role": "god"}, format="json"
    )
    assert bad_role.status_code == 400 and "role" in bad_role.json()["message"]
    ghost = client.post(
        f"/api/v1/orgs/{org.pk}/members",
        {"user_id": "00000000-0000-0000-0000-000000000000", "role": "member"},
        format="json",
    )
    assert ghost.status_code == 404


def test_the_last_owner_cannot_be_demoted_or_removed(client_for, owner, org):
    client = client_for(owner)
    demote = client.post(
        f"/api/v1/orgs/{org.pk}/members", {"user_id": str(owner.pk), "role": "admin"}, format="json"
    )
    assert demote.status_code == 409 and demote.json()["code"] == "last_owner"
    remove = client.delete(f"/api/v1/orgs/{org.pk}/members/{owner.pk}")
    assert remove.status_code == 409
    assert Membership.objects.get(user=owner, organization=org).role == "owner"


def test_with_a_second_owner_the_first_may_step_down(client_for, owner, org):
    second = UserFactory()
    MembershipFactory(user=second, organization=org, role="owner")
    response = client_for(owner).delete(f"/api/v1/orgs/{org.pk}/members/{owner.pk}")
    assert response.status_code == 204


def test_an_admin_cannot_grant_or_remove_the_owner_role(client_for, admin_user, owner, org):
    client = client_for(admin_user)
    grant = client.post(
        f"/api/v1/orgs/{org.pk}/members",
        {"user_id": str(admin_user.pk), "role": "owner"},
        format="json",
    )
    assert grant.status_code == 403
    assert client.delete(f"/api/v1/orgs/{org.pk}/members/{owner.pk}").status_code == 403


def test_org_keys_are_created_once_listed_without_secrets_and_revocable(client_for, owner, org):
    client = client_for(owner)
    created = client.post(
        f"/api/v1/orgs/{org.pk}/api-keys",
        {"name": "terraform", "expires_in_hours": 720},
        format="json",
    )
    assert created.status_code == 201
    body = created.json()
    assert body["org_key"].startswith("org_") and body["org_secret"] and body["scope"] == "org"
    listed = client.get(f"/api/v1/orgs/{org.pk}/api-keys").json()
    assert [k["id"] for k in listed] == [body["id"]]
    assert body["org_secret"] not in str(listed)
    assert listed[0]["prefix"] == body["org_key"] and listed[0]["revoked"] is False
    assert client.delete(f"/api/v1/orgs/{org.pk}/api-keys/{body['id']}").status_code == 204
    assert client.get(f"/api/v1/orgs/{org.pk}/api-keys").json() == []


def test_ephemeral_cluster_keys_are_not_listed(client_for, owner, org):
    account_services.api_key_create_for_org(
        organization=org, purpose="cluster_bastion", is_ephemeral=True, expires_in_hours=24
    )
    assert client_for(owner).get(f"/api/v1/orgs/{org.pk}/api-keys").json() == []


def test_a_malformed_key_id_is_400_invalid_key_id(client_for, owner, org):
    response = client_for(owner).delete(f"/api/v1/orgs/{org.pk}/api-keys/nope")
    assert response.status_code == 400 and response.json()["code"] == "invalid_key_id"


def test_a_malformed_org_id_is_400(client_for, owner):
    response = client_for(owner).get("/api/v1/orgs/not-a-uuid")
    assert response.status_code == 400 and response.json()["code"] == "invalid_id"


def test_org_key_list_query_count_does_not_grow_with_keys(
    client_for, owner, org, django_assert_max_num_queries
):
    client = client_for(owner)
    account_services.api_key_create_for_org(organization=org)
    with django_assert_max_num_queries(2):
        client.get(f"/api/v1/orgs/{org.pk}/api-keys")
    for _ in range(10):
        account_services.api_key_create_for_org(organization=org)
    with django_assert_max_num_queries(2):
        assert len(client.get(f"/api/v1/orgs/{org.pk}/api-keys").json()) == 11


@pytest.mark.django_db(transaction=True)
def test_two_owners_removing_each_other_at_once_leave_one_owner():
    import threading

    from django.db import connection

    from apps.core.api.errors import APIError
    from apps.orgs import services

    org = OrganizationFactory()
    first = MembershipFactory(organization=org, role="owner").user
    second = MembershipFactory(organization=org, role="owner").user
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def remove(target):
        try:
            barrier.wait()
            services.membership_remove(organization=org, user_id=target.pk, acting_role="owner")
            outcomes.append("removed")
        except APIError as exc:
            outcomes.append(exc.error_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=remove, args=(u,)) for u in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["last_owner", "removed"]
    assert Membership.objects.filter(organization=org, role="owner").count() == 1


def test_a_viewer_may_head_what_it_may_get(client_for, viewer, org):
    client = client_for(viewer)
    for path in (f"/api/v1/orgs/{org.pk}", f"/api/v1/orgs/{org.pk}/members"):
        assert client.get(path).status_code == 200
        assert client.head(path).status_code == 200
    # HEAD is not a loophole for writes: a viewer still cannot change anything.
    assert client.patch(f"/api/v1/orgs/{org.pk}", {"name": "x"}, format="json").status_code == 403


def test_an_org_key_reads_its_org_but_not_its_people_or_keys(real_org_key_client, owner, org):
    client = real_org_key_client(org)
    assert client.get(f"/api/v1/orgs/{org.pk}").json()["id"] == str(org.pk)
    for path in (f"/api/v1/orgs/{org.pk}/members", f"/api/v1/orgs/{org.pk}/api-keys"):
        response = client.get(path)
        assert response.status_code == 403 and response.json()["code"] == "forbidden"
        assert "olivia@acme.example" not in response.content.decode()
        assert client.head(path).status_code == 403

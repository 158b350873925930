"""Scoped API keys (docs/identity.md, "Scoped keys"): read-only, client networks, clusters.
Real credentials, real cache (Redis) and database; every route's answer to the scoped keys is
also walked in tests/test_isolation_matrix.py."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from apps.accounts import services
from apps.accounts.apikeys import API_KEY_CACHE_PREFIX, forget_local_key
from apps.accounts.models import APIKey
from apps.accounts.tests.factories import UserFactory
from apps.clusters.tests.factories import ClusterFactory, ClusterRunFactory, NodePoolFactory
from apps.dns.tests.factories import DomainFactory, RecordSetFactory
from apps.infrastructure.tests.factories import LoadBalancerFactory, ServerFactory
from apps.orgs.models import Membership
from apps.orgs.tests.factories import MembershipFactory


def _org_client(created: services.CreatedKey, address: str = "127.0.0.1") -> APIClient:
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_X_ORG_KEY=created.plain, HTTP_X_ORG_SECRET=created.secret)
    return client


def _user_client(plain: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_X_API_KEY=plain)
    return client


def _org_key(org, **scope) -> services.CreatedKey:
    return services.api_key_create_for_org(
        organization=org, scope=services.KeyScopeRequest(**scope)
    )


def test_a_read_only_org_key_reads_but_every_write_is_403(org):
    ClusterFactory(organization=org)
    client = _org_client(_org_key(org, read_only=True))
    assert client.get("/api/v1/clusters").status_code == 200
    response = client.post("/api/v1/servers", {"hostname": "x"}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "read_only_key"
    assert client.delete(f"/api/v1/clusters/{uuid.uuid4()}").status_code == 403


def test_a_read_only_key_is_still_read_only_when_its_success_is_cached(org):
    """The second request is served from the process's memory and the shared cache: the scope
    travels with the cached entry."""
    created = _org_key(org, read_only=True)
    client = _org_client(created)
    assert client.get("/api/v1/servers").status_code == 200
    forget_local_key(created.key.public_id)  # only Redis remembers it now
    entry = cache.get(API_KEY_CACHE_PREFIX + created.key.public_id)
    assert entry["scope"]["read_only"] is True
    assert client.post("/api/v1/servers", {}, format="json").status_code == 403
    assert client.post("/api/v1/servers", {}, format="json").status_code == 403


def test_a_cached_entry_without_scopes_is_not_trusted(org):
    """An entry written before scopes existed is a miss: the row (read-only) decides."""
    created = _org_key(org, read_only=True)
    client = _org_client(created)
    assert client.get("/api/v1/servers").status_code == 200
    forget_local_key(created.key.public_id)
    key = API_KEY_CACHE_PREFIX + created.key.public_id
    entry = cache.get(key)
    del entry["scope"]
    cache.set(key, entry)
    assert client.post("/api/v1/servers", {}, format="json").status_code == 403


def test_a_key_used_outside_its_networks_is_401_and_inside_them_works(org):
    created = _org_key(org, allowed_cidrs=("203.0.113.0/24",))
    assert _org_client(created, "127.0.0.1").get("/api/v1/servers").status_code == 401
    assert _org_client(created, "203.0.113.9").get("/api/v1/servers").status_code == 200
    # Remembered as valid now, yet another address is still refused.
    assert _org_client(created, "198.51.100.1").get("/api/v1/servers").status_code == 401


def test_an_ipv4_client_seen_through_a_dual_stack_socket_is_inside_its_ipv4_network(org):
    created = _org_key(org, allowed_cidrs=("203.0.113.0/24",))
    assert _org_client(created, "::ffff:203.0.113.9").get("/api/v1/servers").status_code == 200
    assert _org_client(created, "::ffff:198.51.100.1").get("/api/v1/servers").status_code == 401


def test_the_client_address_is_the_one_behind_the_trusted_proxy(org, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    created = _org_key(org, allowed_cidrs=("203.0.113.0/24",))
    client = _org_client(created, "10.0.0.2")  # the proxy
    ok = client.get("/api/v1/servers", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert ok.status_code == 200
    # A client cannot write an allowed address further left of what the proxy saw.
    spoofed = client.get("/api/v1/servers", HTTP_X_FORWARDED_FOR="203.0.113.7, 192.0.2.1")
    assert spoofed.status_code == 401


def test_a_cluster_scoped_key_sees_only_its_cluster_and_its_runs(org):
    mine, other = ClusterFactory(organization=org), ClusterFactory(organization=org)
    other_run = ClusterRunFactory(cluster=other)
    client = _org_client(_org_key(org, cluster_ids=(mine.pk,)))
    listed = client.get("/api/v1/clusters")
    assert listed.status_code == 200
    assert [c["id"] for c in listed.json()] == [str(mine.pk)]
    assert client.get(f"/api/v1/clusters/{mine.pk}").status_code == 200
    assert client.get(f"/api/v1/clusters/{mine.pk}/runs").status_code == 200
    for path in (
        f"/api/v1/clusters/{other.pk}",
        f"/api/v1/clusters/{other.pk}/runs",
        f"/api/v1/clusters/{other.pk}/runs/{other_run.pk}/logs",
        f"/api/v1/clusters/{other.pk}/metadata",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
    assert client.delete(f"/api/v1/clusters/{other.pk}").status_code == 404
    assert (
        client.post(f"/api/v1/clusters/{other.pk}/kubeconfig", {}, format="json").status_code == 404
    )


def test_a_cluster_scoped_key_is_refused_everything_not_tied_to_its_clusters(org):
    mine = ClusterFactory(organization=org)
    server = ServerFactory(organization=org)
    client = _org_client(_org_key(org, cluster_ids=(mine.pk,)))
    for path in ("/api/v1/servers", f"/api/v1/servers/{server.pk}", "/api/v1/node-pools"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert response.json()["code"] == "key_scope_forbidden"
    assert client.post("/api/v1/clusters", {"name": "new"}, format="json").status_code == 403


def _attachments(org) -> dict[str, dict[str, str]]:
    """Each attach route of a cluster with a body naming an object another cluster uses."""
    other = ClusterFactory(organization=org)
    pool, bastion = (
        NodePoolFactory(organization=org),
        ServerFactory(organization=org, role="bastion"),
    )
    other.node_pools.add(pool, through_defaults={"organization": org})
    domain = DomainFactory(organization=org)
    balancer = LoadBalancerFactory(organization=org)
    return {
        "node-pools": {"node_pool_id": str(pool.pk)},
        "bastion": {"server_id": str(bastion.pk)},
        "captain-domain": {"domain_id": str(domain.pk)},
        "control-plane-record-set": {"record_set_id": str(RecordSetFactory(domain=domain).pk)},
        "apps-load-balancer": {"load_balancer_id": str(balancer.pk)},
        "glueops-load-balancer": {"load_balancer_id": str(balancer.pk)},
    }


def test_a_cluster_scoped_key_attaches_nothing_to_its_cluster_but_may_detach(org):
    """Attaching another cluster's node pool or bastion would let this key's runs reach those
    machines over SSH: every attach is 403 and the cluster is unchanged. Detaching and the
    same attaches by an unscoped key work, so the refusal is the scope."""
    mine = ClusterFactory(organization=org)
    bodies = _attachments(org)
    scoped = _org_client(_org_key(org, cluster_ids=(mine.pk,)))
    for route, body in bodies.items():
        response = scoped.post(f"/api/v1/clusters/{mine.pk}/{route}", body, format="json")
        assert response.status_code == 403, route
        assert response.json()["code"] == "key_scope_forbidden"
    mine.refresh_from_db()
    assert mine.bastion_server_id is None
    assert not mine.node_pools.exists()
    unscoped = _org_client(_org_key(org))
    for route, body in bodies.items():
        response = unscoped.post(f"/api/v1/clusters/{mine.pk}/{route}", body, format="json")
        assert response.status_code == 200, (route, response.content)
    pool_id = bodies["node-pools"]["node_pool_id"]
    for path in ("bastion", "captain-domain", f"node-pools/{pool_id}"):
        response = scoped.delete(f"/api/v1/clusters/{mine.pk}/{path}")
        assert response.status_code == 200, (path, response.content)
    mine.refresh_from_db()
    assert mine.bastion_server_id is None
    assert not mine.node_pools.exists()


def test_a_scoped_key_is_listed_with_its_scopes_and_an_unscoped_one_as_before(
    bearer_client, member, org
):
    cluster = ClusterFactory(organization=org)
    client = bearer_client(member)
    response = client.post(
        "/api/v1/me/api-keys",
        {
            "name": "ci",
            "read_only": True,
            "allowed_cidrs": ["10.1.2.3/16", "2001:db8::1/64"],
            "cluster_ids": [str(cluster.pk)],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["read_only"] is True
    assert body["allowed_cidrs"] == ["10.1.0.0/16", "2001:db8::/64"]
    assert body["cluster_ids"] == [str(cluster.pk)]
    plain = client.post("/api/v1/me/api-keys", {"name": "old"}, format="json").json()
    assert plain["read_only"] is False and plain["allowed_cidrs"] == []
    listed = {k["name"]: k for k in client.get("/api/v1/me/api-keys").json()}
    assert listed["ci"]["cluster_ids"] == [str(cluster.pk)]
    assert listed["old"]["cluster_ids"] == []


def test_org_keys_are_created_and_listed_with_their_scopes(bearer_client, owner, org):
    cluster = ClusterFactory(organization=org)
    client = bearer_client(owner)
    response = client.post(
        f"/api/v1/orgs/{org.pk}/api-keys",
        {"name": "deploy", "cluster_ids": [str(cluster.pk)]},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["cluster_ids"] == [str(cluster.pk)]
    listed = client.get(f"/api/v1/orgs/{org.pk}/api-keys").json()
    assert [k["cluster_ids"] for k in listed if k["name"] == "deploy"] == [[str(cluster.pk)]]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"allowed_cidrs": ["not-a-network"]}, "allowed_cidrs"),
        ({"allowed_cidrs": ["10.0.0.0/99"]}, "allowed_cidrs"),
        ({"cluster_ids": [str(uuid.uuid4())]}, "cluster_ids"),
        ({"cluster_ids": ["nope"]}, "cluster_ids"),
        ({"read_only": "sometimes"}, "read_only"),
        ({"allowed_cidrs": ["10.0.0.0/8"] * 33}, "allowed_cidrs"),
    ],
)
def test_a_bad_scope_is_a_400_naming_the_field(bearer_client, member, body, field):
    response = bearer_client(member).post("/api/v1/me/api-keys", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["message"]
    assert not APIKey.objects.filter(user=member).exists()


def test_a_cluster_of_another_organization_cannot_be_named(bearer_client, owner, org, other_org):
    theirs = ClusterFactory(organization=other_org)
    response = bearer_client(owner).post(
        f"/api/v1/orgs/{org.pk}/api-keys", {"cluster_ids": [str(theirs.pk)]}, format="json"
    )
    assert response.status_code == 400
    assert "cluster_ids" in response.json()["message"]


def test_a_scoped_key_cannot_mint_a_wider_key(member, org):
    """A key limited to networks (not read-only, so it may write) still cannot create a key:
    the new one would not carry its limits."""
    created = services.api_key_create_for_user(
        user=member, scope=services.KeyScopeRequest(allowed_cidrs=("127.0.0.0/8",))
    )
    response = _user_client(created.plain).post("/api/v1/me/api-keys", {}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "key_scope_forbidden"
    assert APIKey.objects.filter(user=member).count() == 1


def test_an_unscoped_user_key_still_creates_keys_as_the_original_does(member):
    created = services.api_key_create_for_user(user=member)
    response = _user_client(created.plain).post("/api/v1/me/api-keys", {}, format="json")
    assert response.status_code == 201


def test_a_cluster_scoped_user_key_reaches_its_cluster_in_its_organization(member, org):
    mine, other = ClusterFactory(organization=org), ClusterFactory(organization=org)
    created = services.api_key_create_for_user(
        user=member, scope=services.KeyScopeRequest(cluster_ids=(mine.pk,))
    )
    client = _user_client(created.plain)
    client.credentials(HTTP_X_API_KEY=created.plain, HTTP_X_ORG_ID=str(org.pk))
    assert client.get(f"/api/v1/clusters/{mine.pk}").status_code == 200
    assert client.get(f"/api/v1/clusters/{other.pk}").status_code == 404
    assert client.get("/api/v1/me").status_code == 403


def test_an_owners_network_limited_key_manages_no_people_keys_group_sync_or_org(owner, org):
    """An owner's key limited to a network (not read-only) still writes resources, but adding
    members, revoking keys, remapping groups and changing the organization are 403
    `key_scope_forbidden`; the owner's unscoped key does the same things, so the refusal is
    the scope."""
    teammate = UserFactory()
    MembershipFactory(user=teammate, organization=org, role="member")
    org_key = services.api_key_create_for_org(organization=org).key
    base = f"/api/v1/orgs/{org.pk}"
    mapping = {"group_email": "ops@acme.example", "role": "owner", "confirm_privileged": True}
    requests = [
        ("post", f"{base}/members", {"user_id": str(teammate.pk), "role": "owner"}),
        ("delete", f"{base}/members/{teammate.pk}", None),
        ("post", f"{base}/api-keys", {}),
        ("delete", f"{base}/api-keys/{org_key.pk}", None),
        ("patch", base, {"name": "Renamed"}),
        ("post", "/api/v1/group-mappings", mapping),
        ("get", "/api/v1/group-sync", None),
        ("post", "/api/v1/me/api-keys", {}),
        ("post", "/api/v1/orgs", {"name": "Elsewhere"}),
    ]
    scoped = services.api_key_create_for_user(
        user=owner, scope=services.KeyScopeRequest(allowed_cidrs=("127.0.0.0/8",))
    )
    client = _user_client(scoped.plain)
    client.credentials(HTTP_X_API_KEY=scoped.plain, HTTP_X_ORG_ID=str(org.pk))
    assert (
        client.post("/api/v1/labels", {"key": "a", "value": "b"}, format="json").status_code == 201
    )
    for method, path, body in requests:
        response = getattr(client, method)(path, body, format="json")
        assert response.status_code == 403, (method, path, response.content)
        assert response.json()["code"] == "key_scope_forbidden"
    assert client.delete(f"/api/v1/me/api-keys/{scoped.key.pk}").status_code == 403
    org.refresh_from_db()
    assert org.name != "Renamed"
    assert Membership.objects.get(user=teammate, organization=org).role == "member"
    assert APIKey.objects.get(pk=org_key.pk).revoked_at is None

    unscoped = services.api_key_create_for_user(user=owner)
    client.credentials(HTTP_X_API_KEY=unscoped.plain, HTTP_X_ORG_ID=str(org.pk))
    for method, path, body in requests:
        response = getattr(client, method)(path, body, format="json")
        assert response.status_code < 300, (method, path, response.content)

"""Absent values are rendered as the original renders them: an omitted key where its Go DTO has
a pointer with `omitempty`, "" where it has a plain string, never `null`."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.clusters.models import ClusterRun
from apps.clusters.tests.factories import ClusterFactory, ClusterRunFactory, NodePoolFactory
from apps.infrastructure.tests.factories import LoadBalancerFactory, ServerFactory

pytestmark = pytest.mark.django_db


def _null_paths(value, path="$"):
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _null_paths(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _null_paths(v, f"{path}[{i}]")]
    return []


def test_a_bare_cluster_omits_its_absent_references_and_has_no_nulls(api, org):
    cluster = ClusterFactory(organization=org)
    for body in (
        api.get(f"/api/v1/clusters/{cluster.pk}").json(),
        api.get("/api/v1/clusters").json()[0],
    ):
        for key in (
            "captain_domain",
            "control_plane_record_set",
            "control_plane_fqdn",
            "apps_load_balancer",
            "glueops_load_balancer",
            "bastion_server",
        ):
            assert key not in body
        assert _null_paths(body) == []


def test_nested_servers_and_load_balancers_have_no_nulls(api, org):
    pool = NodePoolFactory(organization=org)
    server = ServerFactory(organization=org, public_ip_address=None)
    api.post(
        f"/api/v1/node-pools/{pool.pk}/servers", {"server_ids": [str(server.pk)]}, format="json"
    )
    balancer = LoadBalancerFactory(
        organization=org, public_ip_address=None, private_ip_address=None
    )
    cluster = ClusterFactory(organization=org, apps_load_balancer=balancer)
    api.post(
        f"/api/v1/clusters/{cluster.pk}/node-pools", {"node_pool_id": str(pool.pk)}, format="json"
    )
    body = api.get(f"/api/v1/clusters/{cluster.pk}").json()
    assert _null_paths(body) == []
    assert body["apps_load_balancer"]["public_ip_address"] == ""
    assert "public_ip_address" not in body["node_pools"][0]["servers"][0]


def test_a_server_without_a_public_address_omits_it(api, org):
    server = ServerFactory(organization=org, public_ip_address=None)
    assert "public_ip_address" not in api.get(f"/api/v1/servers/{server.pk}").json()
    assert "public_ip_address" not in api.get("/api/v1/servers").json()[0]
    ServerFactory(organization=org, public_ip_address="203.0.113.5")
    addresses = [s.get("public_ip_address") for s in api.get("/api/v1/servers").json()]
    assert "203.0.113.5" in addresses


def test_a_load_balancer_without_addresses_renders_empty_strings(api, org):
    created = api.post(
        "/api/v1/load-balancers", {"name": "edge", "kind": "public"}, format="json"
    ).json()
    assert (created["public_ip_address"], created["private_ip_address"]) == ("", "")
    listed = api.get("/api/v1/load-balancers").json()[0]
    assert _null_paths(listed) == []


def test_a_runs_finished_at_is_omitted_until_it_finishes(api, org):
    run = ClusterRunFactory(cluster=ClusterFactory(organization=org))
    url = f"/api/v1/clusters/{run.cluster_id}/runs"
    assert "finished_at" not in api.get(f"{url}/{run.pk}").json()
    assert "finished_at" not in api.get(url).json()[0]
    ClusterRun.objects.filter(pk=run.pk).update(status="succeeded", finished_at=timezone.now())
    assert api.get(f"{url}/{run.pk}").json()["finished_at"].endswith("Z")


def test_unused_keys_without_expiry_omit_expires_at_and_last_used_at(client_for, owner, org):
    client = client_for(owner)
    created = client.post("/api/v1/me/api-keys", {"name": "ci"}, format="json").json()
    listed = client.get("/api/v1/me/api-keys").json()[0]
    org_created = client.post(f"/api/v1/orgs/{org.pk}/api-keys", {"name": "tf"}, format="json")
    org_listed = client.get(f"/api/v1/orgs/{org.pk}/api-keys").json()[0]
    for body in (created, listed, org_created.json(), org_listed):
        assert "expires_at" not in body and "last_used_at" not in body
        assert _null_paths(body) == []
    expiring = client.post(
        "/api/v1/me/api-keys", {"name": "tmp", "expires_in_hours": 1}, format="json"
    ).json()
    assert expiring["expires_at"].endswith("Z")

"""Optional paging on the main list routes: `?limit=` answers the same plain array, a page at a
time, with the next page in a `Link` header; without it a list is whole, as in the contract."""

from __future__ import annotations

import re

import pytest

from apps.clusters.services import node_pool_attach
from apps.clusters.tests.factories import (
    ClusterFactory,
    ClusterRunFactory,
    LabelFactory,
    NodePoolFactory,
)
from apps.infrastructure.tests.factories import (
    CredentialFactory,
    LoadBalancerFactory,
    ServerFactory,
    SSHKeyFactory,
)

pytestmark = pytest.mark.django_db

LISTS = {
    "/api/v1/servers": ServerFactory,
    "/api/v1/clusters": ClusterFactory,
    "/api/v1/ssh": SSHKeyFactory,
    "/api/v1/node-pools": NodePoolFactory,
    "/api/v1/credentials": CredentialFactory,
    "/api/v1/load-balancers": LoadBalancerFactory,
}
_NEXT = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')


def _walk(client, url: str, key: str = "id") -> tuple[list[str], int]:
    ids: list[str] = []
    pages = 0
    while url:
        response = client.get(url)
        assert response.status_code == 200
        assert isinstance(response.json(), list)
        ids += [item[key] for item in response.json()]
        pages += 1
        link = response.get("Link")
        url = _NEXT.match(link).group("url") if link else ""
    return ids, pages


@pytest.mark.parametrize("path", LISTS)
def test_a_limit_pages_through_the_same_rows_in_the_same_order(api, org, other_org, path):
    LISTS[path].create_batch(5, organization=org)
    LISTS[path].create_batch(2, organization=other_org)
    whole = api.get(path)
    assert "Link" not in whole
    expected = [item["id"] for item in whole.json()]
    assert len(expected) == 5
    ids, pages = _walk(api, f"{path}?limit=2")
    assert ids == expected and pages == 3


def test_the_next_link_keeps_filters_and_is_absolute(api, org):
    ClusterFactory.create_batch(3, organization=org, name="prod-x")
    ClusterFactory(organization=org, name="staging")
    first = api.get("/api/v1/clusters?q=prod&limit=1")
    assert len(first.json()) == 1
    next_url = _NEXT.match(first["Link"]).group("url")
    assert next_url.startswith("http://testserver/api/v1/clusters?")
    assert "q=prod" in next_url and "limit=1" in next_url
    ids, _ = _walk(api, "/api/v1/clusters?q=prod&limit=1")
    assert len(ids) == 3


@pytest.mark.parametrize("limit", ["0", "-1", "abc", "1001"])
def test_a_bad_limit_is_a_400(api, limit):
    response = api.get(f"/api/v1/servers?limit={limit}")
    assert response.status_code == 400 and response.json()["code"] == "invalid_limit"


def test_a_forged_cursor_is_a_400(api):
    response = api.get("/api/v1/servers?cursor=not-a-cursor")
    assert response.status_code == 400 and response.json()["code"] == "invalid_cursor"


def _make_org_keys(org, user, count):
    from apps.accounts.services import api_key_create_for_org

    for n in range(count):
        api_key_create_for_org(organization=org, name=f"k{n}")


def _make_user_keys(org, user, count):
    from apps.accounts.services import api_key_create_for_user

    for n in range(count):
        api_key_create_for_user(user=user, name=f"k{n}")


def _make_orgs(org, user, count):
    from apps.orgs.tests.factories import MembershipFactory

    MembershipFactory.create_batch(count - 1, user=user, role="owner")


def _make_members(org, user, count):
    from apps.orgs.tests.factories import MembershipFactory

    MembershipFactory.create_batch(count - 1, organization=org, role="viewer")


def _make_runs(org, user, count):
    cluster = ClusterFactory(organization=org)
    ClusterRunFactory.create_batch(count, cluster=cluster, status="succeeded")
    ClusterRunFactory(status="succeeded")  # another org's run
    return f"/api/v1/clusters/{cluster.pk}/runs"


def _make_pool_servers(org, user, count):
    pool = NodePoolFactory(organization=org)
    servers = ServerFactory.create_batch(count, organization=org, role="worker")
    node_pool_attach(node_pool=pool, kind="servers", ids=[server.pk for server in servers])
    return f"/api/v1/node-pools/{pool.pk}/servers"


def _make_pool_labels(org, user, count):
    pool = NodePoolFactory(organization=org)
    labels = LabelFactory.create_batch(count, organization=org)
    node_pool_attach(node_pool=pool, kind="labels", ids=[label.pk for label in labels])
    return f"/api/v1/node-pools/{pool.pk}/labels"


# Every other list route: (path, or None when the maker returns it; maker).
OTHER_LISTS = {
    "org api keys": ("/api/v1/orgs/{org}/api-keys", _make_org_keys),
    "my api keys": ("/api/v1/me/api-keys", _make_user_keys),
    "my orgs": ("/api/v1/orgs", _make_orgs),
    "members": ("/api/v1/orgs/{org}/members", _make_members),
    "cluster runs": (None, _make_runs),
    "node pool servers": (None, _make_pool_servers),
    "node pool labels": (None, _make_pool_labels),
}


@pytest.mark.parametrize("name", OTHER_LISTS)
def test_every_other_list_route_pages_the_same_way(client_for, org, owner, name):
    path, make = OTHER_LISTS[name]
    made = make(org, owner, 5)
    path = (path or made).format(org=org.pk)
    client = client_for(owner, org)
    whole = client.get(path)
    assert whole.status_code == 200 and "Link" not in whole
    key = "user_id" if name == "members" else "id"
    expected = [item[key] for item in whole.json()]
    assert len(expected) == 5
    ids, pages = _walk(client, f"{path}?limit=2", key)
    assert ids == expected and pages == 3


@pytest.mark.parametrize("position", ["not-a-time", "1e999", "2026-13-45"])
def test_a_well_formed_cursor_with_a_position_of_the_wrong_kind_is_a_400(api, org, position):
    import base64
    from urllib.parse import urlencode

    ServerFactory.create_batch(2, organization=org)
    cursor = base64.b64encode(urlencode({"p": position}).encode()).decode()
    response = api.get(f"/api/v1/servers?cursor={cursor}")
    assert response.status_code == 400 and response.json()["code"] == "invalid_cursor"

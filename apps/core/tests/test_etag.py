"""Optimistic concurrency on tenant resources: ETag on single-object reads and writes, If-Match
on PATCH and DELETE (412 when stale). Without the header, nothing changes."""

from __future__ import annotations

import re

import pytest
from django.urls import get_resolver

from apps.clusters.models import Label
from apps.clusters.tests.factories import (
    AnnotationFactory,
    ClusterFactory,
    ClusterMetadataFactory,
    LabelFactory,
    NodePoolFactory,
    TaintFactory,
)
from apps.core.api.viewsets import OrgScopedViewSet
from apps.dns.tests.factories import DomainFactory, RecordSetFactory
from apps.groupsync.tests.factories import GroupRoleMappingFactory
from apps.infrastructure.tests.factories import (
    CredentialFactory,
    LoadBalancerFactory,
    ServerFactory,
)
from apps.webhooks.services import webhook_endpoint_create

pytestmark = pytest.mark.django_db


def _tag(api, label) -> str:
    return api.get(f"/api/v1/labels/{label.pk}")["ETag"]


def test_single_object_reads_and_writes_carry_an_etag_and_lists_do_not(api, org):
    created = api.post("/api/v1/labels", {"key": "k", "value": "v"}, format="json")
    label_id = created.json()["id"]

    read = api.get(f"/api/v1/labels/{label_id}")

    assert created["ETag"] == read["ETag"]
    assert read["ETag"].startswith('"') and read["ETag"].endswith('"')
    assert "ETag" not in api.get("/api/v1/labels")


def test_a_patch_with_the_current_tag_succeeds_and_returns_a_new_one(api, org):
    label = LabelFactory(organization=org, value="a")
    tag = _tag(api, label)

    response = api.patch(
        f"/api/v1/labels/{label.pk}", {"value": "b"}, format="json", HTTP_IF_MATCH=tag
    )

    assert response.status_code == 200
    assert response["ETag"] != tag
    assert response["ETag"] == _tag(api, label)


def test_a_patch_with_a_stale_tag_is_412_and_changes_nothing(api, org):
    label = LabelFactory(organization=org, value="a")
    stale = _tag(api, label)
    api.patch(f"/api/v1/labels/{label.pk}", {"value": "b"}, format="json")

    response = api.patch(
        f"/api/v1/labels/{label.pk}", {"value": "c"}, format="json", HTTP_IF_MATCH=stale
    )

    assert response.status_code == 412
    assert response.json()["code"] == "precondition_failed"
    label.refresh_from_db()
    assert label.value == "b"


def test_a_delete_with_a_stale_tag_is_412_and_with_the_current_one_deletes(api, org):
    label = LabelFactory(organization=org, value="a")
    stale = _tag(api, label)
    api.patch(f"/api/v1/labels/{label.pk}", {"value": "b"}, format="json")

    refused = api.delete(f"/api/v1/labels/{label.pk}", HTTP_IF_MATCH=stale)
    deleted = api.delete(f"/api/v1/labels/{label.pk}", HTTP_IF_MATCH=_tag(api, label))

    assert refused.status_code == 412
    assert deleted.status_code == 204
    assert not Label.objects.filter(pk=label.pk).exists()


def test_an_absent_empty_or_star_if_match_keeps_the_unconditional_behaviour(api, org):
    label = LabelFactory(organization=org, value="a")

    no_header = api.patch(f"/api/v1/labels/{label.pk}", {"value": "b"}, format="json")
    empty = api.patch(f"/api/v1/labels/{label.pk}", {"value": "c"}, format="json", HTTP_IF_MATCH="")
    star = api.patch(f"/api/v1/labels/{label.pk}", {"value": "d"}, format="json", HTTP_IF_MATCH="*")

    assert [r.status_code for r in (no_header, empty, star)] == [200, 200, 200]


def test_one_of_several_tags_may_match(api, org):
    label = LabelFactory(organization=org, value="a")
    tags = f'"0000", {_tag(api, label)}'

    response = api.patch(
        f"/api/v1/labels/{label.pk}", {"value": "b"}, format="json", HTTP_IF_MATCH=tags
    )

    assert response.status_code == 200


def test_another_orgs_object_is_404_whatever_the_tag(api, other_org):
    label = LabelFactory(organization=other_org)

    response = api.patch(
        f"/api/v1/labels/{label.pk}", {"value": "x"}, format="json", HTTP_IF_MATCH='"x"'
    )

    assert response.status_code == 404


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_patches_with_one_tag_let_exactly_one_through(live_server, org, member):
    import threading

    import requests

    from apps.accounts import services as account_services

    label = LabelFactory(organization=org, value="a")
    key = account_services.api_key_create_for_user(user=member, name="race").plain
    headers = {"X-API-KEY": key, "X-Org-ID": str(org.pk)}
    url = f"{live_server.url}/api/v1/labels/{label.pk}"
    tag = requests.get(url, headers=headers, timeout=30).headers["ETag"]
    writers = 4
    barrier = threading.Barrier(writers)
    statuses: list[int] = []

    def write(value: str) -> None:
        barrier.wait()
        response = requests.patch(
            url, json={"value": value}, headers={**headers, "If-Match": tag}, timeout=30
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=write, args=(f"v{i}",)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(statuses) == [200] + [412] * (writers - 1)


def test_the_tag_returned_by_a_service_backed_patch_is_good_for_the_next_one(
    client_for, owner, org
):
    client = client_for(owner, org)
    credential = CredentialFactory(organization=org)
    url = f"/api/v1/credentials/{credential.pk}"

    first = client.patch(url, {"name": "one"}, format="json", HTTP_IF_MATCH=client.get(url)["ETag"])
    second = client.patch(url, {"name": "two"}, format="json", HTTP_IF_MATCH=first["ETag"])

    assert (first.status_code, second.status_code) == (200, 200)
    assert client.get(url)["ETag"] == second["ETag"]


# --- every tenant PATCH route honours If-Match ---------------------------------------------------


def _patch_routes() -> dict[str, tuple]:
    """Tenant PATCH route -> (make an object of `org`, its URL, a valid body, the field it sets)."""
    return {
        "labels": (LabelFactory, lambda o: f"labels/{o.pk}", {"value": "b"}, "value"),
        "annotations": (
            AnnotationFactory,
            lambda o: f"annotations/{o.pk}",
            {"value": "b"},
            "value",
        ),
        "taints": (TaintFactory, lambda o: f"taints/{o.pk}", {"value": "b"}, "value"),
        "node-pools": (NodePoolFactory, lambda o: f"node-pools/{o.pk}", {"name": "np-b"}, "name"),
        "clusters": (ClusterFactory, lambda o: f"clusters/{o.pk}", {"name": "renamed"}, "name"),
        "clusters/{clusterID}/metadata": (
            lambda organization: ClusterMetadataFactory(
                cluster=ClusterFactory(organization=organization)
            ),
            lambda o: f"clusters/{o.cluster_id}/metadata/{o.pk}",
            {"value": "b"},
            "value",
        ),
        "servers": (ServerFactory, lambda o: f"servers/{o.pk}", {"hostname": "b"}, "hostname"),
        "credentials": (CredentialFactory, lambda o: f"credentials/{o.pk}", {"name": "b"}, "name"),
        "load-balancers": (
            LoadBalancerFactory,
            lambda o: f"load-balancers/{o.pk}",
            {"name": "b"},
            "name",
        ),
        "dns/domains": (
            DomainFactory,
            lambda o: f"dns/domains/{o.pk}",
            {"zone_id": "ZNEW"},
            "zone_id",
        ),
        "dns/records": (
            lambda organization: RecordSetFactory(domain=DomainFactory(organization=organization)),
            lambda o: f"dns/records/{o.pk}",
            {"ttl": 600},
            "ttl",
        ),
        "group-mappings": (
            GroupRoleMappingFactory,
            lambda o: f"group-mappings/{o.pk}",
            {"role": "viewer"},
            "role",
        ),
        "webhooks": (
            lambda organization: webhook_endpoint_create(
                organization=organization, url="https://hooks.example.com/autoglue"
            )[0],
            lambda o: f"webhooks/{o.pk}",
            {"description": "b"},
            "description",
        ),
    }


def _routed_patch_prefixes() -> set[str]:
    """Every registered tenant route whose viewset answers PATCH, as its router prefix."""
    prefixes = set()

    def walk(patterns) -> None:
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                walk(pattern.url_patterns)
                continue
            cls = getattr(pattern.callback, "cls", None)
            actions = getattr(pattern.callback, "actions", None) or {}
            if (
                cls is None
                or not issubclass(cls, OrgScopedViewSet)
                or "patch" not in actions
                or "patch" not in cls.http_method_names
            ):
                continue
            # "^api/v1/clusters/(?P<clusterID>[^/.]+)/metadata/(?P<pk>[^/.]+)/?$" ->
            # "clusters/{clusterID}/metadata": the route without its own object's id.
            route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", str(pattern.pattern))
            route = route.removeprefix("^").removeprefix("api/v1/").removesuffix("/?$")
            prefix, _, lookup = route.rpartition("/")
            if lookup == f"{{{cls.lookup_url_kwarg or cls.lookup_field}}}":
                prefixes.add(prefix)

    walk(get_resolver().url_patterns)
    return prefixes


def test_the_if_match_table_lists_every_tenant_patch_route():
    assert _routed_patch_prefixes() == set(_patch_routes())


@pytest.mark.parametrize("route", sorted(_patch_routes()))
def test_every_patch_with_a_stale_tag_is_412_and_changes_nothing(client_for, owner, org, route):
    make, path, body, field = _patch_routes()[route]
    client = client_for(owner, org)
    obj = make(organization=org)
    url = f"/api/v1/{path(obj)}"
    before = getattr(obj, field)

    refused = client.patch(url, body, format="json", HTTP_IF_MATCH='"stale"')

    assert refused.status_code == 412, refused.content
    assert refused.json()["code"] == "precondition_failed"
    obj.refresh_from_db()
    assert getattr(obj, field) == before
    accepted = client.patch(url, body, format="json", HTTP_IF_MATCH=client.get(url)["ETag"])
    assert accepted.status_code == 200, accepted.content

"""Node pools and their attached sets of servers, labels, annotations and taints."""

import uuid

import pytest

from apps.clusters.models import NodePool, NodePoolServer
from apps.clusters.tests.factories import (
    AnnotationFactory,
    LabelFactory,
    NodePoolFactory,
    TaintFactory,
)
from apps.infrastructure.models import Server
from apps.infrastructure.tests.factories import ServerFactory

pytestmark = pytest.mark.django_db

SETS = {
    "servers": (ServerFactory, "server_ids", "server_not_found"),
    "labels": (LabelFactory, "label_ids", "label_not_found"),
    "annotations": (AnnotationFactory, "annotation_ids", "annotation_not_found"),
    "taints": (TaintFactory, "taint_ids", "taint_not_found"),
}


def test_create_defaults_role_to_worker_and_returns_empty_sets(api, org):
    response = api.post("/api/v1/node-pools", {"name": "workers"}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["role"] == "worker"
    assert body["organization_id"] == str(org.pk)
    assert body["servers"] == body["labels"] == body["taints"] == body["annotations"] == []
    assert NodePool.objects.get(pk=body["id"]).organization_id == org.pk


def test_role_must_be_master_or_worker(api):
    response = api.post("/api/v1/node-pools", {"name": "x", "role": "bastion"}, format="json")
    assert response.status_code == 400
    assert "role" in response.json()["fields"]


def test_patch_renames_and_q_filters_by_name(api, org):
    pool = NodePoolFactory(organization=org, name="blue")
    NodePoolFactory(organization=org, name="green")
    response = api.patch(
        f"/api/v1/node-pools/{pool.pk}", {"name": "Azure", "role": "master"}, format="json"
    )
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["role"]) == ("Azure", "master")
    assert [p["name"] for p in api.get("/api/v1/node-pools?q=azu").json()] == ["Azure"]


@pytest.mark.parametrize("kind", SETS)
def test_attach_a_set_then_list_it_then_detach_one(api, org, kind):
    factory, field, _ = SETS[kind]
    pool = NodePoolFactory(organization=org)
    items = factory.create_batch(3, organization=org)
    response = api.post(
        f"/api/v1/node-pools/{pool.pk}/{kind}", {field: [str(i.pk) for i in items]}, format="json"
    )
    assert response.status_code == 204
    listed = api.get(f"/api/v1/node-pools/{pool.pk}/{kind}")
    assert listed.status_code == 200
    assert {i["id"] for i in listed.json()} == {str(i.pk) for i in items}
    # The pool itself shows the set too.
    assert len(api.get(f"/api/v1/node-pools/{pool.pk}").json()[kind]) == 3

    # Attaching again is additive and idempotent.
    again = api.post(
        f"/api/v1/node-pools/{pool.pk}/{kind}", {field: [str(items[0].pk)]}, format="json"
    )
    assert again.status_code == 204
    assert len(api.get(f"/api/v1/node-pools/{pool.pk}/{kind}").json()) == 3

    assert api.delete(f"/api/v1/node-pools/{pool.pk}/{kind}/{items[0].pk}").status_code == 204
    remaining = {i["id"] for i in api.get(f"/api/v1/node-pools/{pool.pk}/{kind}").json()}
    assert remaining == {str(items[1].pk), str(items[2].pk)}
    # Detaching never deletes the object itself.
    assert type(items[0]).objects.filter(pk=items[0].pk).exists()


def test_list_annotations_of_a_pool_actually_returns_them(api, org):
    pool = NodePoolFactory(organization=org)
    annotation = AnnotationFactory(organization=org, key="example.com/owner", value="team a")
    pool.annotations.add(annotation, through_defaults={"organization": org})
    response = api.get(f"/api/v1/node-pools/{pool.pk}/annotations")
    assert response.json() == [
        {
            "id": str(annotation.pk),
            "organization_id": str(org.pk),
            "key": "example.com/owner",
            "value": "team a",
            "created_at": response.json()[0]["created_at"],
            "updated_at": response.json()[0]["updated_at"],
        }
    ]


@pytest.mark.parametrize("kind", SETS)
def test_one_malformed_id_is_400_naming_it_and_attaches_nothing(api, org, kind):
    factory, field, _ = SETS[kind]
    pool = NodePoolFactory(organization=org)
    good = factory(organization=org)
    response = api.post(
        f"/api/v1/node-pools/{pool.pk}/{kind}", {field: [str(good.pk), "nope"]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"
    assert f"{field}[1]" in response.json()["message"]
    assert api.get(f"/api/v1/node-pools/{pool.pk}/{kind}").json() == []


@pytest.mark.parametrize("kind", SETS)
def test_another_orgs_id_in_the_set_is_404_naming_it_and_attaches_nothing(
    api, org, other_org, kind
):
    factory, field, code = SETS[kind]
    pool = NodePoolFactory(organization=org)
    mine = factory(organization=org)
    theirs = factory(organization=other_org)
    response = api.post(
        f"/api/v1/node-pools/{pool.pk}/{kind}",
        {field: [str(mine.pk), str(theirs.pk)]},
        format="json",
    )
    assert response.status_code == 404
    assert response.json()["code"] == code
    assert str(theirs.pk) in response.json()["message"]
    assert api.get(f"/api/v1/node-pools/{pool.pk}/{kind}").json() == []


@pytest.mark.parametrize("kind", SETS)
def test_an_empty_or_missing_list_is_400_naming_the_field(api, org, kind):
    _, field, _ = SETS[kind]
    pool = NodePoolFactory(organization=org)
    for body in ({field: []}, {}):
        response = api.post(f"/api/v1/node-pools/{pool.pk}/{kind}", body, format="json")
        assert response.status_code == 400
        assert field in response.json()["fields"]


@pytest.mark.parametrize("kind", SETS)
def test_detaching_something_not_attached_is_an_idempotent_204(api, org, other_org, kind):
    factory, _, _ = SETS[kind]
    pool = NodePoolFactory(organization=org)
    loose = factory(organization=org)
    theirs = factory(organization=other_org)
    for item in (loose, theirs):
        response = api.delete(f"/api/v1/node-pools/{pool.pk}/{kind}/{item.pk}")
        assert response.status_code == 204
    assert api.delete(f"/api/v1/node-pools/{uuid.uuid4()}/{kind}/{loose.pk}").status_code == 404
    assert api.delete(f"/api/v1/node-pools/{pool.pk}/{kind}/bad-id").status_code == 400


def test_a_bastion_server_cannot_join_a_node_pool(api, org):
    pool = NodePoolFactory(organization=org)
    worker = ServerFactory(organization=org)
    bastion = ServerFactory(
        organization=org, role=Server.Role.BASTION, public_ip_address="198.51.100.7"
    )
    response = api.post(
        f"/api/v1/node-pools/{pool.pk}/servers",
        {"server_ids": [str(worker.pk), str(bastion.pk)]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["code"] == "server_not_node"
    assert str(bastion.pk) in response.json()["message"]
    assert not NodePoolServer.objects.filter(node_pool=pool).exists()


@pytest.mark.parametrize("kind", SETS)
def test_another_orgs_pool_is_404_for_a_user_and_an_org_key(
    api, org, other_org, org_key_client, kind
):
    factory, field, _ = SETS[kind]
    theirs = NodePoolFactory(organization=other_org)
    their_item = factory(organization=other_org)
    theirs_url = f"/api/v1/node-pools/{theirs.pk}"
    for client in (api, org_key_client(org)):
        assert client.get(theirs_url).status_code == 404
        assert client.get(f"{theirs_url}/{kind}").status_code == 404
        response = client.post(f"{theirs_url}/{kind}", {field: [str(their_item.pk)]}, format="json")
        assert response.status_code == 404
        assert response.json()["code"] == "node_pool_not_found"
        assert client.delete(f"{theirs_url}/{kind}/{their_item.pk}").status_code == 404
        assert client.patch(theirs_url, {"name": "x"}, format="json").status_code == 404
        # Deleting is idempotent: their pool is answered like an absent one, and stays.
        assert client.delete(theirs_url).status_code == 204
    assert NodePool.objects.filter(pk=theirs.pk, name=theirs.name).exists()


def test_org_key_can_attach_in_its_own_org(org, org_key_client):
    pool = NodePoolFactory(organization=org)
    server = ServerFactory(organization=org)
    response = org_key_client(org).post(
        f"/api/v1/node-pools/{pool.pk}/servers", {"server_ids": [str(server.pk)]}, format="json"
    )
    assert response.status_code == 204


def test_viewer_cannot_attach(client_for, viewer, org):
    pool = NodePoolFactory(organization=org)
    label = LabelFactory(organization=org)
    bob = client_for(viewer, org)
    assert bob.get(f"/api/v1/node-pools/{pool.pk}/labels").status_code == 200
    response = bob.post(
        f"/api/v1/node-pools/{pool.pk}/labels", {"label_ids": [str(label.pk)]}, format="json"
    )
    assert response.status_code == 403


def test_unknown_pool_is_404_and_malformed_is_400(api):
    assert api.get(f"/api/v1/node-pools/{uuid.uuid4()}").json()["code"] == "node_pool_not_found"
    assert api.get("/api/v1/node-pools/xyz").status_code == 400


def _pool_with_everything(org, n):
    pool = NodePoolFactory(organization=org)
    pool.servers.add(
        *ServerFactory.create_batch(n, organization=org), through_defaults={"organization": org}
    )
    pool.labels.add(
        *LabelFactory.create_batch(n, organization=org), through_defaults={"organization": org}
    )
    pool.taints.add(
        *TaintFactory.create_batch(n, organization=org), through_defaults={"organization": org}
    )
    pool.annotations.add(
        *AnnotationFactory.create_batch(n, organization=org), through_defaults={"organization": org}
    )
    return pool


def test_list_query_count_does_not_grow_with_pools_or_members(
    api, org, django_assert_max_num_queries
):
    _pool_with_everything(org, 1)
    with django_assert_max_num_queries(7) as small:
        assert len(api.get("/api/v1/node-pools").json()) == 1
    for _ in range(5):
        _pool_with_everything(org, 4)
    with django_assert_max_num_queries(len(small.captured_queries)):
        body = api.get("/api/v1/node-pools").json()
    assert len(body) == 6
    assert all(len(p["servers"]) in (1, 4) for p in body)

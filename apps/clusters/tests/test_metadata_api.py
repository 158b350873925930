"""Cluster metadata: /clusters/{clusterID}/metadata."""

import pytest

from apps.clusters.models import ClusterMetadata
from apps.clusters.tests.factories import ClusterFactory, ClusterMetadataFactory

pytestmark = pytest.mark.django_db


def test_create_normalizes_key_and_trims_value_then_shows_on_the_cluster(api, org):
    cluster = ClusterFactory(organization=org)
    url = f"/api/v1/clusters/{cluster.pk}/metadata"
    response = api.post(url, {"key": "  Env ", "value": "  Prod  "}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["key"], body["value"]) == ("env", "Prod")
    assert body["cluster_id"] == str(cluster.pk)
    assert body["organization_id"] == str(org.pk)
    assert api.get(f"/api/v1/clusters/{cluster.pk}").json()["metadata"] == {"env": "Prod"}


def test_duplicate_key_is_409_on_create_and_on_rename(api, org):
    cluster = ClusterFactory(organization=org)
    url = f"/api/v1/clusters/{cluster.pk}/metadata"
    api.post(url, {"key": "env", "value": "a"}, format="json")
    dup = api.post(url, {"key": "ENV", "value": "b"}, format="json")
    assert dup.status_code == 409
    assert dup.json()["code"] == "conflict"
    other = api.post(url, {"key": "team", "value": "b"}, format="json").json()
    rename = api.patch(f"{url}/{other['id']}", {"key": "Env"}, format="json")
    assert rename.status_code == 409
    # The same key on another cluster is fine.
    second = ClusterFactory(organization=org)
    assert (
        api.post(
            f"/api/v1/clusters/{second.pk}/metadata", {"key": "env", "value": "c"}, format="json"
        ).status_code
        == 201
    )


def test_missing_or_blank_key_or_value_is_400(api, org):
    cluster = ClusterFactory(organization=org)
    url = f"/api/v1/clusters/{cluster.pk}/metadata"
    for body, field in [
        ({"value": "x"}, "key"),
        ({"key": "k"}, "value"),
        ({"key": "k", "value": " "}, "value"),
    ]:
        response = api.post(url, body, format="json")
        assert response.status_code == 400
        assert field in response.json()["fields"]


def test_list_is_oldest_first_get_patch_delete(api, org):
    cluster = ClusterFactory(organization=org)
    first = ClusterMetadataFactory(cluster=cluster, key="a")
    ClusterMetadataFactory(cluster=cluster, key="b")
    url = f"/api/v1/clusters/{cluster.pk}/metadata"
    assert [m["key"] for m in api.get(url).json()] == ["a", "b"]
    assert api.get(f"{url}/{first.pk}").json()["key"] == "a"
    patched = api.patch(f"{url}/{first.pk}", {"value": " new "}, format="json")
    assert patched.status_code == 200
    assert (patched.json()["key"], patched.json()["value"]) == ("a", "new")
    assert api.delete(f"{url}/{first.pk}").status_code == 204
    # Deleting again is idempotent, as in the original; reading it is still 404.
    assert api.delete(f"{url}/{first.pk}").status_code == 204
    assert api.get(f"{url}/{first.pk}").status_code == 404


def test_metadata_of_another_cluster_is_not_reachable_through_this_one(api, org, other_org):
    cluster = ClusterFactory(organization=org)
    elsewhere = ClusterMetadataFactory(cluster=ClusterFactory(organization=org))
    theirs = ClusterMetadataFactory(cluster=ClusterFactory(organization=other_org))
    response = api.get(f"/api/v1/clusters/{cluster.pk}/metadata/{elsewhere.pk}")
    assert response.status_code == 404
    # A delete through this cluster answers as for an absent item and touches nothing.
    for item in (elsewhere, theirs):
        assert api.delete(f"/api/v1/clusters/{cluster.pk}/metadata/{item.pk}").status_code == 204
        assert ClusterMetadata.objects.filter(pk=item.pk).exists()


def test_another_orgs_cluster_metadata_is_404_for_a_user_and_an_org_key(
    api, org, other_org, org_key_client
):
    theirs = ClusterMetadataFactory(cluster=ClusterFactory(organization=other_org))
    url = f"/api/v1/clusters/{theirs.cluster_id}/metadata"
    for client in (api, org_key_client(org)):
        listed = client.get(url)
        assert listed.status_code == 404
        assert listed.json()["code"] == "not_found"
        assert client.post(url, {"key": "k", "value": "v"}, format="json").status_code == 404
        assert client.get(f"{url}/{theirs.pk}").status_code == 404
        assert client.patch(f"{url}/{theirs.pk}", {"value": "x"}, format="json").status_code == 404
        assert client.delete(f"{url}/{theirs.pk}").status_code == 404
    assert ClusterMetadata.objects.get(pk=theirs.pk).value == theirs.value


def test_malformed_cluster_id_is_400(api):
    assert api.get("/api/v1/clusters/bad/metadata").json()["code"] == "bad_request"

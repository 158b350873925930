import pytest

from apps.clusters.models import Cluster
from apps.clusters.tests.factories import ClusterFactory
from apps.infrastructure.models import LoadBalancer
from apps.infrastructure.tests.factories import LoadBalancerFactory

URL = "/api/v1/load-balancers"
FIELDS = {
    "id",
    "organization_id",
    "name",
    "kind",
    "public_ip_address",
    "private_ip_address",
    "created_at",
    "updated_at",
}


def _payload(**overrides):
    return {
        "name": "apps",
        "kind": "GlueOps",
        "public_ip_address": "198.51.100.7",
        "private_ip_address": "10.2.0.7",
        **overrides,
    }


def test_creating_a_load_balancer_stores_kind_lowercase(api, org):
    response = api.post(URL, _payload(), format="json")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == FIELDS
    assert body["kind"] == "glueops"
    assert body["organization_id"] == str(org.pk)
    assert LoadBalancer.objects.get(pk=body["id"]).kind == "glueops"


def test_an_unknown_kind_is_400_bad_kind(api):
    response = api.post(URL, _payload(kind="internal"), format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "bad_kind"
    assert LoadBalancer.objects.count() == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"public_ip_address": "1.2.3"}, "public_ip_address"),
        ({"private_ip_address": "x"}, "private_ip_address"),
        ({"name": ""}, "name"),
    ],
)
def test_invalid_load_balancer_fields_are_400_naming_the_field(api, overrides, field):
    response = api.post(URL, _payload(**overrides), format="json")

    assert response.status_code == 400
    assert field in response.json()["message"]


def test_get_returns_one_load_balancer(api, org):
    lb = LoadBalancerFactory(organization=org)

    response = api.get(f"{URL}/{lb.pk}")

    assert response.status_code == 200
    assert response.json()["id"] == str(lb.pk)


def test_patch_updates_and_returns_the_row(api, org):
    lb = LoadBalancerFactory(organization=org, kind="public")

    response = api.patch(f"{URL}/{lb.pk}", {"kind": "GLUEOPS", "name": "edge"}, format="json")

    assert response.status_code == 200
    assert (response.json()["kind"], response.json()["name"]) == ("glueops", "edge")
    lb.refresh_from_db()
    assert lb.kind == "glueops"


def test_patch_with_a_bad_kind_is_400_bad_kind(api, org):
    lb = LoadBalancerFactory(organization=org)

    response = api.patch(f"{URL}/{lb.pk}", {"kind": "nope"}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "bad_kind"


def test_deleting_a_load_balancer_is_204(api, org):
    lb = LoadBalancerFactory(organization=org)

    assert api.delete(f"{URL}/{lb.pk}").status_code == 204
    assert not LoadBalancer.objects.filter(pk=lb.pk).exists()


def test_list_shows_only_this_orgs_load_balancers_in_constant_queries(
    api, org, other_org, django_assert_max_num_queries
):
    LoadBalancerFactory(organization=org, name="mine")
    LoadBalancerFactory(organization=other_org, name="theirs")
    with django_assert_max_num_queries(4) as few:
        assert [lb["name"] for lb in api.get(URL).json()] == ["mine"]
    LoadBalancerFactory.create_batch(10, organization=org)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(api.get(URL).json()) == 11


def test_a_viewer_can_read_load_balancers_but_not_write(client_for, viewer, org):
    lb = LoadBalancerFactory(organization=org)
    client = client_for(viewer, org)

    assert client.get(URL).status_code == 200
    assert client.get(f"{URL}/{lb.pk}").status_code == 200
    assert client.post(URL, _payload(), format="json").status_code == 403
    assert client.patch(f"{URL}/{lb.pk}", {"name": "x"}, format="json").status_code == 403
    assert client.delete(f"{URL}/{lb.pk}").status_code == 403


@pytest.mark.parametrize(
    ("method", "body"), [("get", None), ("patch", {"name": "stolen"}), ("delete", None)]
)
def test_another_orgs_load_balancer_is_404_for_users_and_org_keys(
    client_for, owner, org, other_org, org_key_client, method, body
):
    theirs = LoadBalancerFactory(organization=other_org, name="theirs")
    for client in (client_for(owner, org), org_key_client(org)):
        kwargs = {"format": "json"} if body is not None else {}
        args = (body,) if body is not None else ()
        response = getattr(client, method)(f"{URL}/{theirs.pk}", *args, **kwargs)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    theirs.refresh_from_db()
    assert theirs.name == "theirs"


def test_an_org_key_lists_only_its_orgs_load_balancers(org_key_client, org, other_org):
    LoadBalancerFactory(organization=org, name="mine")
    LoadBalancerFactory(organization=other_org, name="theirs")

    assert [lb["name"] for lb in org_key_client(org).get(URL).json()] == ["mine"]


def test_deleting_a_clusters_load_balancer_detaches_it_and_puts_the_cluster_back_to_pre_pending(
    api, org
):
    lb = LoadBalancerFactory(organization=org)
    both = ClusterFactory(
        organization=org,
        apps_load_balancer=lb,
        glueops_load_balancer=lb,
        status="failed",
        last_error="boom",
    )
    glueops_only = ClusterFactory(organization=org, glueops_load_balancer=lb, status="ready")
    bystander = ClusterFactory(organization=org, status="ready")

    assert api.delete(f"{URL}/{lb.pk}").status_code == 204

    for cluster in (both, glueops_only):
        cluster.refresh_from_db()
        assert cluster.apps_load_balancer_id is None
        assert cluster.glueops_load_balancer_id is None
        assert (cluster.status, cluster.last_error) == (Cluster.Status.PRE_PENDING, "")
    bystander.refresh_from_db()
    assert bystander.status == "ready"

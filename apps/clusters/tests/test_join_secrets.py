"""The join token and certificate key in cluster responses: for roles that may read secrets
(owner, admin, org key) in every cluster response, `no-store`; never for the others; the
kubeconfig stays reveal-only."""

import pytest

from apps.clusters.tests.factories import ClusterFactory, NodePoolFactory
from apps.infrastructure.tests.factories import LoadBalancerFactory

pytestmark = pytest.mark.django_db

KUBECONFIG = "apiVersion: v1\nusers:\n- user:\n    token: CANARY-KUBECONFIG-JOIN\n"
JOIN_SECRETS = {"random_token", "certificate_key"}


@pytest.fixture(params=["owner", "admin_user", "org_key"])
def secret_reader(request, client_for, org_key_client, org):
    if request.param == "org_key":
        return org_key_client(org)
    return client_for(request.getfixturevalue(request.param), org)


@pytest.fixture(params=["member", "viewer"])
def plain_reader(request, client_for, org):
    return client_for(request.getfixturevalue(request.param), org)


def _assert_join_secrets(response, cluster) -> None:
    assert response.status_code in (200, 201), response.content
    body = response.json()
    assert body["random_token"] == cluster.random_token
    assert body["certificate_key"] == cluster.certificate_key
    assert "kubeconfig" not in body
    assert response["Cache-Control"] == "no-store"


def test_secret_readers_get_join_secrets_in_list_and_single_responses(secret_reader, org):
    cluster = ClusterFactory(organization=org, kubeconfig=KUBECONFIG)
    listed = secret_reader.get("/api/v1/clusters")
    assert listed.status_code == 200 and listed["Cache-Control"] == "no-store"
    assert {k: listed.json()[0][k] for k in JOIN_SECRETS} == {
        "random_token": cluster.random_token,
        "certificate_key": cluster.certificate_key,
    }
    assert "CANARY-KUBECONFIG" not in listed.content.decode()
    _assert_join_secrets(secret_reader.get(f"/api/v1/clusters/{cluster.pk}"), cluster)


def test_secret_readers_get_join_secrets_from_every_cluster_write(secret_reader, org):
    created = secret_reader.post("/api/v1/clusters", {"name": "prod"}, format="json")
    assert created.status_code == 201 and created["Cache-Control"] == "no-store"
    assert len(created.json()["certificate_key"]) == 64
    cluster = ClusterFactory(organization=org)
    url = f"/api/v1/clusters/{cluster.pk}"
    pool = NodePoolFactory(organization=org)
    balancer = LoadBalancerFactory(organization=org)
    for response in (
        secret_reader.patch(url, {"region": "nbg1"}, format="json"),
        secret_reader.post(f"{url}/node-pools", {"node_pool_id": str(pool.pk)}, format="json"),
        secret_reader.post(
            f"{url}/apps-load-balancer", {"load_balancer_id": str(balancer.pk)}, format="json"
        ),
        secret_reader.delete(f"{url}/apps-load-balancer"),
        secret_reader.post(f"{url}/kubeconfig", {"kubeconfig": KUBECONFIG}, format="json"),
    ):
        _assert_join_secrets(response, cluster)
        assert "CANARY-KUBECONFIG" not in response.content.decode()


def test_other_roles_never_see_join_secrets(plain_reader, org):
    cluster = ClusterFactory(organization=org)
    responses = [
        plain_reader.get("/api/v1/clusters"),
        plain_reader.get(f"/api/v1/clusters/{cluster.pk}"),
    ]
    assert not JOIN_SECRETS & set(responses[0].json()[0])
    for response in responses:
        assert response.status_code == 200
        assert "CANARY" not in response.content.decode()
    assert not JOIN_SECRETS & set(responses[1].json())


def test_the_kubeconfig_stays_reveal_only(client_for, owner, org):
    cluster = ClusterFactory(organization=org, kubeconfig=KUBECONFIG)
    client = client_for(owner, org)
    assert "kubeconfig" not in client.get(f"/api/v1/clusters/{cluster.pk}").json()
    revealed = client.get(f"/api/v1/clusters/{cluster.pk}?reveal=true")
    assert revealed.json()["kubeconfig"] == KUBECONFIG
    assert revealed["Cache-Control"] == "no-store"


def test_the_owners_list_query_count_stays_flat_with_join_secrets(
    client_for, owner, org, django_assert_max_num_queries, django_capture_on_commit_callbacks
):
    client = client_for(owner, org)
    # The organization's data key is cached once its creating transaction commits.
    with django_capture_on_commit_callbacks(execute=True):
        ClusterFactory(organization=org)
    with django_assert_max_num_queries(12) as small:
        assert len(client.get("/api/v1/clusters").json()) == 1
    ClusterFactory.create_batch(4, organization=org)
    with django_assert_max_num_queries(len(small.captured_queries)):
        body = client.get("/api/v1/clusters").json()
    assert len(body) == 5 and all(c["random_token"].startswith("CANARY-TOKEN") for c in body)

"""Cluster secrets stay out of logs, the admin console and unauthenticated answers."""

import logging

import pytest

from apps.accounts.tests.factories import UserFactory
from apps.clusters.tests.factories import ClusterFactory

pytestmark = pytest.mark.django_db

KUBECONFIG = "apiVersion: v1\nusers:\n- user:\n    token: CANARY-KUBECONFIG-LOG\n"


def test_setting_and_revealing_a_kubeconfig_logs_no_secret(api, org, client_for, owner, caplog):
    cluster = ClusterFactory(organization=org)
    with caplog.at_level(logging.DEBUG):
        api.post(
            f"/api/v1/clusters/{cluster.pk}/kubeconfig", {"kubeconfig": KUBECONFIG}, format="json"
        )
        rejected = api.post(
            f"/api/v1/clusters/{cluster.pk}/kubeconfig", {"kubeconfig": 42}, format="json"
        )
        revealed = client_for(owner, org).get(f"/api/v1/clusters/{cluster.pk}?reveal=true")
    assert rejected.status_code == 400
    assert revealed.json()["kubeconfig"] == KUBECONFIG
    assert "CANARY" not in caplog.text
    assert any(getattr(r, "event", "") == "cluster_secrets_revealed" for r in caplog.records)


def test_admin_console_pages_never_show_cluster_secrets(client, org):
    admin = UserFactory(primary_email="ops@autoglue.example", is_admin=True)
    client.force_login(admin)
    cluster = ClusterFactory(organization=org, kubeconfig=KUBECONFIG)
    for url in (
        "/admin/clusters/cluster/",
        f"/admin/clusters/cluster/{cluster.pk}/change/",
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        assert "CANARY" not in response.content.decode()


@pytest.mark.parametrize(
    "url", ["/api/v1/labels", "/api/v1/node-pools", "/api/v1/clusters", "/api/v1/admin/actions"]
)
def test_anonymous_requests_are_401(anon, url):
    response = anon.get(url)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"

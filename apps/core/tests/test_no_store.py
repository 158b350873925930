"""Every response that carries a secret is `Cache-Control: no-store`, route by route: reveals,
downloads, cluster responses with join secrets, freshly created keys and token pairs."""

from __future__ import annotations

import pytest

from apps.accounts import services as account_services
from apps.accounts.tests.support import signing_key  # noqa: F401  (fixture)
from apps.clusters.tests.factories import ClusterFactory
from apps.infrastructure.tests.factories import CredentialFactory, SSHKeyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def secrets(org):
    return {
        "ssh": SSHKeyFactory(organization=org),
        "credential": CredentialFactory(organization=org),
        "cluster": ClusterFactory(organization=org, kubeconfig="apiVersion: v1\n"),
    }


ROUTES = [
    ("get", "/api/v1/ssh/{ssh}?reveal=true"),
    ("get", "/api/v1/ssh/{ssh}/download?part=private"),
    ("get", "/api/v1/ssh/{ssh}/download?part=both"),
    ("get", "/api/v1/ssh/{ssh}/download?part=public"),
    ("get", "/api/v1/ssh/{ssh}/download?part=private&mode=json"),
    ("get", "/api/v1/ssh/{ssh}/download?part=both&mode=json"),
    ("post", "/api/v1/credentials/{credential}/reveal"),
    ("get", "/api/v1/clusters/{cluster}?reveal=true"),
    ("get", "/api/v1/clusters/{cluster}"),
    ("get", "/api/v1/clusters"),
    ("post", "/api/v1/clusters"),
    ("patch", "/api/v1/clusters/{cluster}"),
    ("delete", "/api/v1/clusters/{cluster}/bastion"),
    ("post", "/api/v1/orgs/{org}/api-keys"),
]


@pytest.mark.parametrize(("method", "template"), ROUTES)
def test_every_secret_bearing_org_route_is_no_store(
    client_for, owner, org, secrets, method, template
):
    url = template.format(org=org.pk, **{name: obj.pk for name, obj in secrets.items()})
    body = {"name": "prod"} if method in ("post", "patch") else None
    response = getattr(client_for(owner, org), method)(url, body, format="json")
    assert 200 <= response.status_code < 300, (url, response.content[:200])
    assert response["Cache-Control"] == "no-store", url


def test_an_org_key_reading_clusters_gets_no_store(org_key_client, org):
    ClusterFactory(organization=org)
    assert org_key_client(org).get("/api/v1/clusters")["Cache-Control"] == "no-store"


def test_a_new_user_key_and_a_token_pair_are_no_store(client_for, member, signing_key):  # noqa: F811
    created = client_for(member).post("/api/v1/me/api-keys", {"name": "ci"}, format="json")
    assert created.status_code == 201 and created["Cache-Control"] == "no-store"
    pair = account_services.token_pair_issue(user=member)
    refreshed = client_for(member).post(
        "/api/v1/auth/refresh", {"refresh_token": pair.refresh_token}, format="json"
    )
    assert refreshed.status_code == 200 and refreshed["Cache-Control"] == "no-store"

"""The admin console shows every infrastructure model but never a secret."""

import pytest
from django.test import Client

from apps.accounts.tests.factories import UserFactory
from apps.clusters.models import Cluster
from apps.clusters.tests.factories import ClusterFactory
from apps.infrastructure.models import Server
from apps.infrastructure.tests.factories import (
    CredentialFactory,
    LoadBalancerFactory,
    ServerFactory,
    SSHKeyFactory,
)


@pytest.fixture
def console(db) -> Client:
    client = Client()
    client.force_login(UserFactory(primary_email="root@autoglue.example", is_admin=True))
    return client


def test_admin_list_and_change_pages_never_show_private_keys_or_credential_secrets(console, org):
    key = SSHKeyFactory(organization=org)
    server = ServerFactory(organization=org, ssh_key=key)
    credential = CredentialFactory(organization=org, name="prod")
    lb = LoadBalancerFactory(organization=org)
    private_line = key.private_key.splitlines()[1]

    pages = {
        "/admin/infrastructure/sshkey/": key.name,
        f"/admin/infrastructure/sshkey/{key.pk}/change/": key.fingerprint,
        "/admin/infrastructure/server/": server.hostname,
        f"/admin/infrastructure/server/{server.pk}/change/": server.hostname,
        "/admin/infrastructure/credential/": credential.name,
        f"/admin/infrastructure/credential/{credential.pk}/change/": credential.name,
        "/admin/infrastructure/loadbalancer/": lb.name,
        f"/admin/infrastructure/loadbalancer/{lb.pk}/change/": lb.name,
    }
    for url, expected in pages.items():
        response = console.get(url)
        text = response.content.decode()
        assert response.status_code == 200, url
        assert expected in text, url
        assert private_line not in text, url
        assert "CANARY" not in text, url


def test_saving_a_credential_in_the_admin_keeps_its_secret(console, org):
    credential = CredentialFactory(organization=org, name="prod")
    before = credential.secret

    response = console.post(
        f"/admin/infrastructure/credential/{credential.pk}/change/",
        {"name": "renamed", "account_id": "", "region": ""},
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    credential.refresh_from_db()
    assert credential.name == "renamed"
    assert credential.secret == before


def test_the_admin_refuses_a_server_using_another_orgs_key(console, org, other_org):
    server = ServerFactory(organization=org)
    theirs = SSHKeyFactory(organization=other_org)

    response = console.post(
        f"/admin/infrastructure/server/{server.pk}/change/",
        {
            "hostname": server.hostname,
            "private_ip_address": server.private_ip_address,
            "ssh_user": "ubuntu",
            "ssh_key": str(theirs.pk),
            "role": "worker",
            "status": "pending",
            "ssh_host_key": "",
            "ssh_host_key_algo": "",
        },
    )

    assert response.status_code == 200
    assert "must belong to the server" in response.content.decode()
    server.refresh_from_db()
    assert server.ssh_key.organization_id == org.pk


def test_deleting_a_bastion_or_load_balancer_in_the_admin_resets_the_clusters_using_them(
    console, org
):
    bastion = ServerFactory(
        organization=org, role=Server.Role.BASTION, public_ip_address="198.51.100.8"
    )
    lb = LoadBalancerFactory(organization=org)
    by_bastion = ClusterFactory(organization=org, bastion_server=bastion, status="ready")
    by_lb = ClusterFactory(organization=org, apps_load_balancer=lb, status="ready")

    one = console.post(f"/admin/infrastructure/server/{bastion.pk}/delete/", {"post": "yes"})
    many = console.post(
        "/admin/infrastructure/loadbalancer/",
        {"action": "delete_selected", "_selected_action": [str(lb.pk)], "post": "yes"},
    )

    assert (one.status_code, many.status_code) == (302, 302)
    by_bastion.refresh_from_db()
    by_lb.refresh_from_db()
    assert (by_bastion.bastion_server_id, by_bastion.status) == (None, Cluster.Status.PRE_PENDING)
    assert (by_lb.apps_load_balancer_id, by_lb.status) == (None, Cluster.Status.PRE_PENDING)

"""The console's infrastructure pages: never a secret on a page, generated keys with fixed
material, the services' rules on every save, role-checked and logged actions."""

import json
import re

import pytest
from django.contrib.admin.models import ADDITION, LogEntry
from django.test import Client

from apps.accounts.tests.factories import UserFactory
from apps.clusters.models import Cluster, NodePoolServer
from apps.clusters.tests.factories import ClusterFactory, NodePoolFactory
from apps.infrastructure.models import Credential, Server, SSHKey
from apps.infrastructure.tests.factories import (
    CredentialFactory,
    LoadBalancerFactory,
    ServerFactory,
    SSHKeyFactory,
)
from apps.jobs.models import JobRun
from apps.orgs.tests.admin_support import console_for, form_data, form_errors, staff_of


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
    # Another organization's key is not even a choice here.
    assert "ssh_key" in response.context["adminform"].form.errors
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


# --- Org staff: generated keys, fixed key material, service rules, logged reveals -----------


@pytest.fixture
def alice(org):
    return console_for(staff_of(org, "owner", "alice@acme.example"))


def test_an_ssh_key_is_generated_by_the_add_form_never_typed(alice, org):
    response = alice.post(
        "/admin/infrastructure/sshkey/add/",
        {
            "organization": str(org.pk),
            "name": "deploy",
            "key_type": "rsa",
            "bits": "2048",
            "comment": "ops",
            "public_key": "ssh-rsa typed-by-hand",
            "private_key": "typed-by-hand",
        },
    )

    assert response.status_code == 302, form_errors(response)
    key = SSHKey.objects.get(name="deploy")
    assert (key.organization_id, key.key_type, key.bits) == (org.pk, "rsa", 2048)
    assert key.public_key.startswith("ssh-rsa ") and "typed-by-hand" not in key.public_key
    assert "PRIVATE KEY" in key.private_key
    assert LogEntry.objects.filter(object_id=str(key.pk), action_flag=ADDITION).exists()


def test_bits_for_an_ed25519_key_are_refused_with_the_services_message(alice, org):
    response = alice.post(
        "/admin/infrastructure/sshkey/add/",
        {"organization": str(org.pk), "name": "edge", "key_type": "ed25519", "bits": "4096"},
    )

    assert "only applies to rsa keys" in str(response.context["adminform"].form.errors["bits"])
    assert not SSHKey.objects.filter(name="edge").exists()


@pytest.mark.parametrize(("field", "value"), [("key_type", "rsa"), ("bits", "4096")])
def test_an_ssh_keys_type_and_bits_cannot_be_edited(alice, org, field, value):
    key = SSHKeyFactory(organization=org, name="deploy")
    before = (key.key_type, key.bits, key.public_key, key.private_key)
    data = form_data(alice.get(f"/admin/infrastructure/sshkey/{key.pk}/change/"))
    data[field] = value

    response = alice.post(f"/admin/infrastructure/sshkey/{key.pk}/change/", data)

    assert "cannot be changed" in form_errors(response)
    key.refresh_from_db()
    assert (key.key_type, key.bits, key.public_key, key.private_key) == before


def test_downloading_a_private_key_needs_the_reveal_right_and_is_logged(org):
    key = SSHKeyFactory(organization=org, name="deploy")
    owner = console_for(staff_of(org, "owner", "olivia@acme.example"))
    member = console_for(staff_of(org, "member", "alice@acme.example"))
    post = {"action": "download_private_key", "_selected_action": [str(key.pk)]}

    refused = member.post("/admin/infrastructure/sshkey/", post)
    allowed = owner.post("/admin/infrastructure/sshkey/", post)

    assert refused.status_code == 403 and b"PRIVATE KEY" not in refused.content
    assert allowed.status_code == 200 and allowed.content.decode() == key.private_key
    entries = LogEntry.objects.filter(object_id=str(key.pk), change_message__contains="Revealed")
    assert entries.count() == 1 and entries.get().user.primary_email == "olivia@acme.example"


def test_the_ssh_key_page_says_whether_a_private_key_is_set_never_what_it_is(alice, org):
    key = SSHKeyFactory(organization=org)

    page = alice.get(f"/admin/infrastructure/sshkey/{key.pk}/change/").content.decode()

    assert "set" in page and key.private_key.splitlines()[1] not in page


def test_a_bastion_without_a_public_address_is_refused_with_the_services_message(alice, org):
    key = SSHKeyFactory(organization=org)
    response = alice.post(
        "/admin/infrastructure/server/add/",
        {
            "organization": str(org.pk),
            "hostname": "jump",
            "public_ip_address": "",
            "private_ip_address": "10.0.0.5",
            "ssh_user": "ubuntu",
            "ssh_port": "22",
            "ssh_key": str(key.pk),
            "role": "bastion",
            "status": "pending",
        },
    )

    errors = response.context["adminform"].form.errors
    assert "required for a bastion" in str(errors["public_ip_address"])
    assert not Server.objects.filter(hostname="jump").exists()


def test_a_server_in_a_node_pool_cannot_become_a_bastion(alice, org):
    server = ServerFactory(organization=org, public_ip_address="198.51.100.3")
    pool = NodePoolFactory(organization=org)
    NodePoolServer.objects.create(organization=org, node_pool=pool, server=server)
    data = form_data(alice.get(f"/admin/infrastructure/server/{server.pk}/change/"))
    data["role"] = "bastion"

    response = alice.post(f"/admin/infrastructure/server/{server.pk}/change/", data)

    assert "detach it before making it a bastion" in form_errors(response)
    server.refresh_from_db()
    assert server.role == "worker"


def test_bootstrap_now_queues_a_bastion_bootstrap_and_logs_it(alice, org):
    bastion = ServerFactory(
        organization=org, role=Server.Role.BASTION, public_ip_address="198.51.100.4"
    )
    worker = ServerFactory(organization=org)

    response = alice.post(
        "/admin/infrastructure/server/",
        {"action": "bootstrap_now", "_selected_action": [str(bastion.pk), str(worker.pk)]},
    )

    assert response.status_code == 302
    bastion.refresh_from_db()
    worker.refresh_from_db()
    assert (bastion.status, worker.status) == ("provisioning", "pending")
    assert JobRun.objects.filter(kind="bootstrap_bastion", subject_id=bastion.pk).count() == 1
    assert LogEntry.objects.filter(object_id=str(bastion.pk), change_message__contains="bootstrap")


def test_reset_host_key_forgets_the_pinned_key_and_logs_it(alice, org):
    server = ServerFactory(organization=org, ssh_host_key="AAAA", ssh_host_key_algo="ssh-ed25519")

    alice.post(
        "/admin/infrastructure/server/",
        {"action": "reset_host_key", "_selected_action": [str(server.pk)]},
    )

    server.refresh_from_db()
    assert (server.ssh_host_key, server.ssh_host_key_algo) == ("", "")
    assert LogEntry.objects.filter(object_id=str(server.pk), change_message__contains="host key")


def test_a_viewer_cannot_bootstrap_or_reset(org):
    bastion = ServerFactory(
        organization=org,
        role=Server.Role.BASTION,
        public_ip_address="198.51.100.4",
        ssh_host_key="AAAA",
    )
    bob = console_for(staff_of(org, "viewer", "bob@acme.example"))

    for action in ("bootstrap_now", "reset_host_key"):
        bob.post(
            "/admin/infrastructure/server/",
            {"action": action, "_selected_action": [str(bastion.pk)]},
        )

    bastion.refresh_from_db()
    assert (bastion.status, bastion.ssh_host_key) == ("pending", "AAAA")
    assert not JobRun.objects.exists()


def test_a_credential_secret_downloads_only_through_the_logged_action(alice, org):
    credential = CredentialFactory(organization=org, name="prod")

    page = alice.get(f"/admin/infrastructure/credential/{credential.pk}/change/")
    download = alice.post(
        "/admin/infrastructure/credential/",
        {"action": "download_secret", "_selected_action": [str(credential.pk)]},
    )

    assert "CANARY" not in page.content.decode()
    assert download.status_code == 200 and b"CANARY-prod" in download.content
    assert LogEntry.objects.filter(object_id=str(credential.pk), change_message__contains="secret")


def test_deleting_an_ssh_key_in_use_is_refused_naming_the_servers_using_it(alice, org):
    server = ServerFactory(organization=org)

    response = alice.post(
        f"/admin/infrastructure/sshkey/{server.ssh_key_id}/delete/", {"post": "yes"}, follow=True
    )

    assert response.status_code == 200
    assert "Cannot delete SSH key" in response.content.decode()
    assert server.hostname in response.content.decode()  # what still uses it
    assert SSHKey.objects.filter(pk=server.ssh_key_id).exists()


def _credential_post(org, **parts: str) -> dict:
    return {
        "organization": str(org.pk),
        "name": "dns",
        "provider": "aws",
        "kind": "aws_access_key",
        "schema_version": "1",
        "scope_kind": "service",
        "scope_version": "1",
        "scope__service": "route53",
        "account_id": "",
        "region": "",
        **parts,
    }


def test_a_credential_added_in_the_console_is_validated_by_the_registry(alice, org):
    parts = {
        "secret__access_key_id": "AKIACANARY0000000001",
        "secret__secret_access_key": "CANARY-new",
    }

    response = alice.post("/admin/infrastructure/credential/add/", _credential_post(org, **parts))

    assert response.status_code == 302, form_errors(response)
    credential = Credential.objects.get(name="dns")
    assert credential.scope == {"service": "route53"} and credential.scope_fingerprint
    assert json.loads(credential.secret) == {
        "access_key_id": "AKIACANARY0000000001",
        "secret_access_key": "CANARY-new",
    }
    page = alice.get(f"/admin/infrastructure/credential/{credential.pk}/change/")
    assert "CANARY-new" not in page.content.decode()


def test_the_add_page_offers_kinds_and_scope_kinds_as_labelled_choices(alice):
    page = alice.get("/admin/infrastructure/credential/add/").content.decode()
    assert '<option value="aws_access_key">AWS access key (aws)</option>' in page
    assert "API token (cloudflare, hetzner, digitalocean)" in page
    assert '<option value="resource">One AWS resource (ARN)' in page
    assert 'name="secret__token"' in page and 'name="scope__arn"' in page
    assert "exactly 20 letters or digits" in page  # the registry's rule, as help text
    assert "console/credential_form.js" in page


def test_the_browser_neither_fills_in_nor_offers_to_save_credential_secrets(alice):
    page = alice.get("/admin/infrastructure/credential/add/").content.decode()
    for name in ("secret__secret_access_key", "secret__token"):
        tag = re.search(rf'<input[^>]*name="{name}"[^>]*>', page)
        assert tag is not None and 'type="password"' in tag.group(0), name
        assert 'autocomplete="new-password"' in tag.group(0), name
    for name in ("secret__access_key_id", "secret__username", "secret__client_id"):
        tag = re.search(rf'<input[^>]*name="{name}"[^>]*>', page)
        assert tag is not None and 'autocomplete="off"' in tag.group(0), name


def test_an_api_token_credential_is_assembled_from_its_own_field(alice, org):
    data = {
        **_credential_post(org, secret__token="CANARY-token-1"),
        "provider": "hetzner",
        "kind": "api_token",
        "scope_kind": "provider",
        "scope__service": "",
    }

    response = alice.post("/admin/infrastructure/credential/add/", data)

    assert response.status_code == 302, form_errors(response)
    credential = Credential.objects.get(name="dns")
    assert json.loads(credential.secret) == {"token": "CANARY-token-1"}
    assert credential.scope == {}


def test_a_part_of_another_kind_is_refused_not_dropped(alice, org):
    parts = {
        "secret__access_key_id": "AKIACANARY0000000001",
        "secret__secret_access_key": "CANARY-new",
        "secret__token": "CANARY-stray",
    }

    response = alice.post("/admin/infrastructure/credential/add/", _credential_post(org, **parts))

    errors = response.context["adminform"].form.errors
    assert "is not part of a aws_access_key secret" in str(errors["secret__token"])
    page = response.content.decode()
    assert "CANARY-new" not in page and "CANARY-stray" not in page
    assert not Credential.objects.exists()


def test_an_invalid_credential_secret_is_a_form_error_on_its_part_and_never_echoed(alice, org):
    parts = {"secret__access_key_id": "short", "secret__secret_access_key": "CANARY-typo"}

    response = alice.post("/admin/infrastructure/credential/add/", _credential_post(org, **parts))

    errors = response.context["adminform"].form.errors
    assert "must be exactly 20 letters or digits" in str(errors["secret__access_key_id"])
    assert "CANARY-typo" not in response.content.decode()
    assert not Credential.objects.filter(name="dns").exists()

import pytest
from django.core.exceptions import ValidationError

from apps.clusters.models import Cluster, NodePoolServer
from apps.clusters.tests.factories import ClusterFactory, NodePoolFactory
from apps.core.validators import check_server_for_ssh
from apps.infrastructure.clients import ServerSSHClient
from apps.infrastructure.models import Server
from apps.infrastructure.tests.factories import ServerFactory, SSHKeyFactory

URL = "/api/v1/servers"
# An address to refuse, never one to bind.
UNSPECIFIED = "0.0.0.0"  # noqa: S104
CONTRACT_FIELDS = {
    "id",
    "organization_id",
    "hostname",
    "public_ip_address",
    "private_ip_address",
    "ssh_user",
    "ssh_key_id",
    "role",
    "status",
    "created_at",
    "updated_at",
}
# ssh_port is beyond the contract (docs/inventory.md).
RESPONSE_FIELDS = CONTRACT_FIELDS | {"ssh_port"}


@pytest.fixture
def key(org):
    return SSHKeyFactory(organization=org)


def _payload(key, **overrides):
    return {
        "hostname": "node-1",
        "private_ip_address": "10.0.0.5",
        "ssh_user": "ubuntu",
        "ssh_key_id": str(key.pk),
        "role": "worker",
        **overrides,
    }


def test_creating_a_server_returns_the_contract_shape_with_pending_status(api, org, key):
    response = api.post(URL, _payload(key, role="Worker"), format="json")

    assert response.status_code == 201
    body = response.json()
    # No public address: omitted, as the original's `*string` with `omitempty` (never null).
    assert set(body) == RESPONSE_FIELDS - {"public_ip_address"}
    assert body["role"] == "worker"
    assert body["status"] == "pending"
    assert body["ssh_key_id"] == str(key.pk)
    assert body["organization_id"] == str(org.pk)
    assert body["created_at"].endswith("Z")


def test_a_bastion_without_a_public_ip_is_400_public_ip_required(api, key):
    response = api.post(URL, _payload(key, role="bastion"), format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "public_ip_required"
    assert Server.objects.count() == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"role": "etcd"}, "role"),
        ({"status": "done"}, "status"),
        ({"private_ip_address": "10.0.0.300"}, "private_ip_address"),
        ({"public_ip_address": "not-an-ip"}, "public_ip_address"),
        ({"ssh_user": ""}, "ssh_user"),
        ({"ssh_key_id": "nope"}, "ssh_key_id"),
    ],
)
def test_invalid_server_fields_are_400_naming_the_field(api, key, overrides, field):
    response = api.post(URL, _payload(key, **overrides), format="json")

    assert response.status_code == 400
    assert field in response.json()["message"]


def test_another_orgs_ssh_key_cannot_be_used_404(api, other_org):
    theirs = SSHKeyFactory(organization=other_org)

    response = api.post(URL, _payload(theirs), format="json")

    assert response.status_code == 404
    assert response.json()["code"] == "ssh_key_not_found"
    assert Server.objects.count() == 0


def test_patch_returns_the_updated_row(api, org, key):
    server = ServerFactory(organization=org, ssh_key=key)

    response = api.patch(
        f"{URL}/{server.pk}",
        {"status": "READY", "public_ip_address": "203.0.113.5", "role": "bastion"},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["role"], body["public_ip_address"]) == (
        "ready",
        "bastion",
        "203.0.113.5",
    )
    server.refresh_from_db()
    assert server.status == "ready"


def test_patching_a_bastion_to_drop_its_public_ip_is_refused(api, org, key):
    server = ServerFactory(
        organization=org, ssh_key=key, role="bastion", public_ip_address="203.0.113.5"
    )

    response = api.patch(f"{URL}/{server.pk}", {"public_ip_address": ""}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "public_ip_required"
    server.refresh_from_db()
    assert server.public_ip_address == "203.0.113.5"


def test_patch_cannot_move_a_server_to_another_orgs_key(api, org, other_org, key):
    server = ServerFactory(organization=org, ssh_key=key)
    theirs = SSHKeyFactory(organization=other_org)

    response = api.patch(f"{URL}/{server.pk}", {"ssh_key_id": str(theirs.pk)}, format="json")

    assert response.status_code == 404
    server.refresh_from_db()
    assert server.ssh_key_id == key.pk


def test_list_filters_by_status_and_role_newest_first(api, org, key):
    ServerFactory(organization=org, ssh_key=key, hostname="a", status="ready", role="master")
    ServerFactory(organization=org, ssh_key=key, hostname="b", status="ready", role="worker")
    ServerFactory(organization=org, ssh_key=key, hostname="c", status="pending", role="worker")

    assert [s["hostname"] for s in api.get(URL).json()] == ["c", "b", "a"]
    assert [s["hostname"] for s in api.get(URL, {"status": "ready"}).json()] == ["b", "a"]
    assert [s["hostname"] for s in api.get(URL, {"role": "worker"}).json()] == ["c", "b"]


def test_an_unknown_status_filter_is_400_status_invalid(api):
    response = api.get(URL, {"status": "sleeping"})

    assert response.status_code == 400
    assert response.json()["code"] == "status_invalid"


def test_list_never_shows_the_pinned_host_key(api, org, key):
    ServerFactory(
        organization=org, ssh_key=key, ssh_host_key="CANARY-HOSTKEY", ssh_host_key_algo="x"
    )

    assert "CANARY-HOSTKEY" not in api.get(URL).content.decode()


def test_list_query_count_does_not_grow_with_servers(api, org, key, django_assert_max_num_queries):
    ServerFactory(organization=org, ssh_key=key)
    with django_assert_max_num_queries(4) as few:
        api.get(URL)
    ServerFactory.create_batch(10, organization=org, ssh_key=key)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(api.get(URL).json()) == 11


def test_reset_hostkey_clears_the_pinned_key_and_returns_the_server(api, org, key):
    server = ServerFactory(
        organization=org, ssh_key=key, ssh_host_key="AAAA", ssh_host_key_algo="ssh-ed25519"
    )

    response = api.post(f"{URL}/{server.pk}/reset-hostkey", {}, format="json")

    assert response.status_code == 200
    assert set(response.json()) == RESPONSE_FIELDS - {"public_ip_address"}
    server.refresh_from_db()
    assert (server.ssh_host_key, server.ssh_host_key_algo) == ("", "")


def test_deleting_a_server_is_204(api, org, key):
    server = ServerFactory(organization=org, ssh_key=key)

    assert api.delete(f"{URL}/{server.pk}").status_code == 204
    assert not Server.objects.filter(pk=server.pk).exists()


def test_a_viewer_can_read_servers_but_not_change_them(client_for, viewer, org, key):
    server = ServerFactory(organization=org, ssh_key=key)
    client = client_for(viewer, org)

    assert client.get(URL).status_code == 200
    assert client.get(f"{URL}/{server.pk}").status_code == 200
    assert client.post(URL, _payload(key), format="json").status_code == 403
    assert client.patch(f"{URL}/{server.pk}", {"status": "ready"}, format="json").status_code == 403
    assert client.post(f"{URL}/{server.pk}/reset-hostkey", {}, format="json").status_code == 403
    assert client.delete(f"{URL}/{server.pk}").status_code == 403


def test_a_malformed_server_id_is_400(api):
    response = api.get(f"{URL}/123")

    assert response.status_code == 400
    assert response.json()["code"] == "id_invalid"


def test_a_trailing_slash_is_tolerated(api, org, key):
    server = ServerFactory(organization=org, ssh_key=key)

    assert api.get(f"{URL}/").status_code == 200
    assert api.get(f"{URL}/{server.pk}/").status_code == 200


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("get", "", None),
        ("patch", "", {"status": "ready"}),
        ("delete", "", None),
        ("post", "/reset-hostkey", {}),
    ],
)
def test_another_orgs_server_is_404_for_users_and_org_keys(
    client_for, owner, org, other_org, org_key_client, method, suffix, body
):
    theirs = ServerFactory(organization=other_org, status="pending")
    for client in (client_for(owner, org), org_key_client(org)):
        kwargs = {"format": "json"} if body is not None else {}
        args = (body,) if body is not None else ()
        response = getattr(client, method)(f"{URL}/{theirs.pk}{suffix}", *args, **kwargs)
        assert response.status_code == 404
        assert response.json()["code"] == "server_not_found"
    theirs.refresh_from_db()
    assert theirs.status == "pending"


def test_an_org_key_lists_only_its_orgs_servers(org_key_client, org, other_org):
    ServerFactory(organization=org, hostname="mine")
    ServerFactory(organization=other_org, hostname="theirs")

    response = org_key_client(org).get(URL)

    assert [s["hostname"] for s in response.json()] == ["mine"]


def test_an_org_key_cannot_attach_another_orgs_ssh_key(org_key_client, org, other_org):
    theirs = SSHKeyFactory(organization=other_org)

    response = org_key_client(org).post(URL, _payload(theirs), format="json")

    assert response.status_code == 404
    assert response.json()["code"] == "ssh_key_not_found"
    assert Server.objects.count() == 0


# --- bastion rules on PATCH, and what a delete does to clusters -------------------------------


def test_a_server_in_a_node_pool_cannot_be_patched_into_a_bastion(api, org, key):
    server = ServerFactory(organization=org, ssh_key=key, public_ip_address="198.51.100.4")
    pool = NodePoolFactory(organization=org)
    NodePoolServer.objects.create(organization=org, node_pool=pool, server=server)

    response = api.patch(f"{URL}/{server.pk}", {"role": "bastion"}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "server_not_node"
    server.refresh_from_db()
    assert server.role == Server.Role.WORKER


def test_a_server_in_no_node_pool_can_become_a_bastion(api, org, key):
    server = ServerFactory(organization=org, ssh_key=key, public_ip_address="198.51.100.4")

    response = api.patch(f"{URL}/{server.pk}", {"role": "bastion"}, format="json")

    assert response.status_code == 200
    assert response.json()["role"] == "bastion"


def test_a_bastion_a_cluster_uses_cannot_take_another_role(api, org, key):
    bastion = ServerFactory(
        organization=org, ssh_key=key, role=Server.Role.BASTION, public_ip_address="198.51.100.4"
    )
    cluster = ClusterFactory(organization=org, bastion_server=bastion)

    response = api.patch(f"{URL}/{bastion.pk}", {"role": "worker"}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "server_is_bastion"
    assert str(cluster.pk) in response.json()["message"]
    bastion.refresh_from_db()
    assert bastion.role == Server.Role.BASTION


def test_an_unused_bastion_can_take_another_role_and_a_used_one_can_change_other_fields(
    api, org, key
):
    free = ServerFactory(
        organization=org, ssh_key=key, role=Server.Role.BASTION, public_ip_address="198.51.100.4"
    )
    used = ServerFactory(
        organization=org, ssh_key=key, role=Server.Role.BASTION, public_ip_address="198.51.100.5"
    )
    ClusterFactory(organization=org, bastion_server=used)

    assert api.patch(f"{URL}/{free.pk}", {"role": "worker"}, format="json").status_code == 200
    response = api.patch(f"{URL}/{used.pk}", {"hostname": "jump", "role": "Bastion"}, format="json")
    assert response.status_code == 200
    assert response.json()["hostname"] == "jump"


def test_deleting_a_clusters_bastion_detaches_it_and_puts_the_cluster_back_to_pre_pending(
    api, org, key
):
    bastion = ServerFactory(
        organization=org, ssh_key=key, role=Server.Role.BASTION, public_ip_address="198.51.100.4"
    )
    cluster = ClusterFactory(
        organization=org, bastion_server=bastion, status="ready", last_error="old failure"
    )
    bystander = ClusterFactory(organization=org, status="ready")

    assert api.delete(f"{URL}/{bastion.pk}").status_code == 204

    cluster.refresh_from_db()
    assert (cluster.bastion_server_id, cluster.status, cluster.last_error) == (
        None,
        Cluster.Status.PRE_PENDING,
        "",
    )
    bystander.refresh_from_db()
    assert bystander.status == "ready"


# --- Values that reach SSH ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"hostname": "node 1"}, "hostname"),
        ({"hostname": "node-1\nProxyCommand evil"}, "hostname"),
        ({"hostname": "-node"}, "hostname"),
        ({"hostname": "node_1.example.com"}, "hostname"),
        ({"hostname": "a" * 64}, "hostname"),
        ({"ssh_user": "-oProxyCommand=touch /tmp/x"}, "ssh_user"),
        ({"ssh_user": "Root"}, "ssh_user"),
        ({"ssh_user": "ubuntu;id"}, "ssh_user"),
        ({"ssh_user": "u" * 33}, "ssh_user"),
        ({"private_ip_address": "169.254.169.254"}, "private_ip_address"),
        ({"private_ip_address": UNSPECIFIED}, "private_ip_address"),
        ({"private_ip_address": "224.0.0.1"}, "private_ip_address"),
        ({"public_ip_address": "169.254.169.254"}, "public_ip_address"),
        ({"public_ip_address": "255.255.255.255"}, "public_ip_address"),
        ({"public_ip_address": "::"}, "public_ip_address"),
        ({"ssh_port": 0}, "ssh_port"),
        ({"ssh_port": 65536}, "ssh_port"),
        ({"ssh_port": "ssh"}, "ssh_port"),
    ],
)
def test_values_that_reach_ssh_are_checked_on_create_and_patch(api, org, key, overrides, field):
    created = api.post(URL, _payload(key, **overrides), format="json")
    server = ServerFactory(organization=org, ssh_key=key)
    before = Server.objects.values().get(pk=server.pk)
    patched = api.patch(f"{URL}/{server.pk}", overrides, format="json")

    for response in (created, patched):
        assert response.status_code == 400
        body = response.json()
        assert body["code"] == "validation_error"
        assert body["message"].startswith(f"{field}: ")
        assert list(body["fields"]) == [field]
    assert Server.objects.count() == 1
    assert Server.objects.values().get(pk=server.pk) == before


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "::1", "169.254.169.254", "224.0.0.1", UNSPECIFIED]
)
def test_loopback_link_local_multicast_and_unspecified_targets_are_refused_in_production(
    api, key, settings, address
):
    settings.AUTOGLUE_ALLOW_LOOPBACK_TARGETS = False

    response = api.post(URL, _payload(key, private_ip_address=address), format="json")

    assert response.status_code == 400
    assert response.json()["message"].startswith("private_ip_address: ")
    assert Server.objects.count() == 0


def test_loopback_targets_are_allowed_when_the_setting_says_so(api, key, settings):
    settings.AUTOGLUE_ALLOW_LOOPBACK_TARGETS = True

    response = api.post(URL, _payload(key, private_ip_address="127.0.0.1"), format="json")

    assert response.status_code == 201


def test_valid_ssh_values_are_stored_and_ssh_port_defaults_to_22(api, key):
    response = api.post(
        URL,
        _payload(
            key,
            hostname="db-1.eu-west.example.com",
            ssh_user="ec2-user",
            private_ip_address="192.168.10.4",
            public_ip_address="2001:db8::10",
        ),
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["ssh_port"] == 22

    other = api.post(URL, _payload(key, hostname="", ssh_port=2222), format="json")
    assert other.status_code == 201
    assert (other.json()["hostname"], other.json()["ssh_port"]) == ("", 2222)

    patched = api.patch(f"{URL}/{other.json()['id']}", {"ssh_port": 22022}, format="json")
    assert patched.status_code == 200
    assert patched.json()["ssh_port"] == 22022


def test_the_admin_console_model_validation_refuses_values_that_reach_ssh(org, key, settings):
    settings.AUTOGLUE_ALLOW_LOOPBACK_TARGETS = False
    server = ServerFactory.build(
        organization=org,
        ssh_key=key,
        hostname="bad host",
        ssh_user="-oProxyCommand=x",
        private_ip_address="169.254.169.254",
        public_ip_address="not-an-ip",
        ssh_port=0,
    )

    with pytest.raises(ValidationError) as caught:
        server.full_clean()

    errors = caught.value.message_dict
    assert set(errors) == {
        "hostname",
        "ssh_user",
        "private_ip_address",
        "public_ip_address",
        "ssh_port",
    }
    # A malformed address gets Django's own message only, not a second one from ours.
    assert len(errors["public_ip_address"]) == 1


def test_a_row_saved_before_validation_existed_is_refused_before_ssh(org, key):
    server = ServerFactory(
        organization=org, ssh_key=key, hostname="node\nevil", ssh_user="-oProxyCommand=x"
    )

    with pytest.raises(ValidationError) as caught:
        check_server_for_ssh(server)

    hostname, ssh_user = caught.value.messages
    assert hostname.startswith(f"server {server.pk}: hostname: must be a host name")
    assert ssh_user.startswith(f"server {server.pk}: ssh_user: must be a POSIX user name")
    check_server_for_ssh(ServerFactory(organization=org, ssh_key=key))


def test_the_ssh_client_connects_to_the_servers_ssh_port_unless_told_otherwise(org, key):
    server = ServerFactory(organization=org, ssh_key=key, ssh_port=2222)

    assert ServerSSHClient(server=server).port == 2222
    assert ServerSSHClient(server=server, port=22).port == 22

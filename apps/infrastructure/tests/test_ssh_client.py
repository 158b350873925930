"""Generated keys log in to a real sshd (Debian openssh-server) on a loopback port, through
`ServerSSHClient`, with the host key pinned on the server row."""

import base64
import getpass

import paramiko
import pytest

from apps.infrastructure.clients import (
    HostKeyMismatch,
    HostKeyNotPinned,
    ServerSSHClient,
    fingerprint,
)
from apps.infrastructure.keygen import generate_key_pair
from apps.infrastructure.models import Server, SSHKey


@pytest.fixture
def sshd(sshd_factory):
    return sshd_factory()


def _server_via_api(api, sshd, key_payload) -> Server:
    created = api.post("/api/v1/ssh", key_payload, format="json")
    assert created.status_code == 201
    key = SSHKey.objects.get(pk=created.json()["id"])
    sshd.authorize(getpass.getuser(), created.json()["public_key"])
    response = api.post(
        "/api/v1/servers",
        {
            "hostname": "bastion-1",
            "public_ip_address": "127.0.0.1",
            "private_ip_address": "10.0.0.1",
            "ssh_user": getpass.getuser(),
            "ssh_key_id": str(key.pk),
            "role": "bastion",
        },
        format="json",
    )
    assert response.status_code == 201
    return Server.objects.get(pk=response.json()["id"])


@pytest.mark.parametrize(
    "key_payload",
    [{"name": "rsa", "type": "rsa", "bits": 2048}, {"name": "ed", "type": "ed25519"}],
    ids=["rsa", "ed25519"],
)
def test_a_generated_key_logs_in_and_the_host_key_is_pinned_on_first_contact(
    api, sshd, key_payload
):
    server = _server_via_api(api, sshd, key_payload)

    with ServerSSHClient(server=server, port=sshd.port, trust_on_first_use=True) as ssh:
        result = ssh.run("echo hello; echo oops >&2; exit 3")

    assert (result.exit_status, result.stdout, result.stderr) == (3, "hello\n", "oops\n")
    server.refresh_from_db()
    algo, blob = sshd.host_public_key.split()[:2]
    assert (server.ssh_host_key_algo, server.ssh_host_key) == (algo, blob)
    # The second connection trusts only the pinned key.
    with ServerSSHClient(server=server, port=sshd.port) as ssh:
        assert ssh.run("echo again").stdout == "again\n"


def test_a_server_whose_pinned_host_key_differs_is_refused(api, sshd):
    server = _server_via_api(api, sshd, {"name": "ed", "type": "ed25519"})
    impostor = generate_key_pair(key_type="ed25519").public_key.split()
    Server.objects.filter(pk=server.pk).update(
        ssh_host_key_algo=impostor[0], ssh_host_key=impostor[1]
    )
    server.refresh_from_db()

    with pytest.raises(HostKeyMismatch) as refused:
        ServerSSHClient(server=server, port=sshd.port).connect()

    message = str(refused.value)
    assert (
        fingerprint(paramiko.PKey.from_type_string(impostor[0], base64.b64decode(impostor[1])))
        in message
    )
    offered = sshd.host_public_key.split()
    assert (
        fingerprint(paramiko.PKey.from_type_string(offered[0], base64.b64decode(offered[1])))
        in message
    )


def test_without_a_pinned_host_key_the_client_refuses_unless_told_to_trust(api, sshd):
    server = _server_via_api(api, sshd, {"name": "ed", "type": "ed25519"})

    with pytest.raises(HostKeyNotPinned):
        ServerSSHClient(server=server, port=sshd.port).connect()


def test_reset_hostkey_lets_the_next_connection_learn_a_new_host_key(api, sshd):
    server = _server_via_api(api, sshd, {"name": "ed", "type": "ed25519"})
    old = generate_key_pair(key_type="ed25519").public_key.split()
    Server.objects.filter(pk=server.pk).update(ssh_host_key_algo=old[0], ssh_host_key=old[1])

    response = api.post(f"/api/v1/servers/{server.pk}/reset-hostkey", {}, format="json")

    assert response.status_code == 200
    server.refresh_from_db()
    assert server.ssh_host_key == ""
    with ServerSSHClient(server=server, port=sshd.port, trust_on_first_use=True) as ssh:
        assert ssh.run("true").exit_status == 0
    server.refresh_from_db()
    assert server.ssh_host_key == sshd.host_public_key.split()[1]


def test_a_key_that_is_not_authorized_cannot_log_in(api, sshd, org):
    server = _server_via_api(api, sshd, {"name": "ed", "type": "ed25519"})
    stranger = api.post("/api/v1/ssh", {"name": "x", "type": "ed25519"}, format="json").json()
    server.ssh_key = SSHKey.objects.get(pk=stranger["id"])

    with pytest.raises(paramiko.AuthenticationException):
        ServerSSHClient(server=server, port=sshd.port, trust_on_first_use=True).connect()


def test_connections_are_counted_by_outcome_never_by_host(api, sshd):
    from prometheus_client import REGISTRY

    def counted(outcome: str) -> float:
        return (
            REGISTRY.get_sample_value("autoglue_ssh_connections_total", {"outcome": outcome}) or 0
        )

    ok, mismatched = counted("ok"), counted("host_key_mismatch")
    server = _server_via_api(api, sshd, {"name": "ed", "type": "ed25519"})
    with ServerSSHClient(server=server, port=sshd.port, trust_on_first_use=True):
        pass
    impostor = generate_key_pair(key_type="ed25519").public_key.split()
    Server.objects.filter(pk=server.pk).update(
        ssh_host_key_algo=impostor[0], ssh_host_key=impostor[1]
    )
    server.refresh_from_db()
    with pytest.raises(HostKeyMismatch):
        ServerSSHClient(server=server, port=sshd.port).connect()

    assert (counted("ok"), counted("host_key_mismatch")) == (ok + 1, mismatched + 1)

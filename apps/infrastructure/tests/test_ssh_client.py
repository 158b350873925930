"""Generated keys log in to a real sshd (Debian openssh-server) on a loopback port, through
`ServerSSHClient`, with the host key pinned on the server row."""

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import paramiko
import pytest

from apps.infrastructure.clients import HostKeyNotPinned, ServerSSHClient
from apps.infrastructure.keygen import generate_key_pair
from apps.infrastructure.models import Server, SSHKey

SSHD = "/usr/sbin/sshd"


def _ensure_sshd() -> None:
    if os.path.exists(SSHD):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "openssh-server"],
            check=False,
            capture_output=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            timeout=300,
        )
    if not os.path.exists(SSHD):
        pytest.skip("openssh-server is not installed and could not be installed (needs root + apt)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SSHDaemon:
    """A throwaway sshd: its own host key, one authorized_keys file per user name."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.keys_dir = root / "keys"
        self.keys_dir.mkdir()
        host = generate_key_pair(key_type="ed25519")
        host_key_path = root / "host_ed25519"
        host_key_path.write_text(host.private_key)
        host_key_path.chmod(0o600)
        self.host_public_key = host.public_key
        self.config = root / "sshd_config"
        self.config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {host_key_path}",
                    f"PidFile {root / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.keys_dir}/%u",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    "StrictModes no",
                ]
            )
            + "\n"
        )
        self.process: subprocess.Popen | None = None

    def authorize(self, user: str, public_key: str) -> None:
        with (self.keys_dir / user).open("a") as handle:
            handle.write(public_key + "\n")

    def start(self) -> None:
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.config.resolve())],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.process.stderr.read().decode()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    if sock.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start within 10 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def sshd(tmp_path):
    _ensure_sshd()
    daemon = SSHDaemon(tmp_path)
    daemon.start()
    yield daemon
    daemon.stop()


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

    with pytest.raises(paramiko.BadHostKeyException):
        ServerSSHClient(server=server, port=sshd.port).connect()


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

"""SSH client for a `Server` row: paramiko, host key pinned from the row, private key loaded from
memory (never written to disk).

    with ServerSSHClient(server=server) as ssh:
        result = ssh.run("uname -a")

Host keys: a server with a pinned key (`ssh_host_key`/`ssh_host_key_algo`) only accepts that
key (RejectPolicy; a different key raises paramiko's BadHostKeyException). A server with no
pinned key is refused (`HostKeyNotPinned`) unless the caller passes `trust_on_first_use=True`
(the bastion bootstrap does), in which case the key offered is pinned on the row — compare-and-
set, so a concurrent first contact cannot replace a key another one already pinned.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import paramiko

from apps.infrastructure.models import Server, SSHKey

DEFAULT_TIMEOUT = 10.0


class HostKeyNotPinned(Exception):
    """The server has no pinned host key and trust on first use was not allowed."""


class HostKeyChanged(Exception):
    """Someone else pinned a different host key between our read and our write."""


@dataclass(frozen=True)
class CommandResult:
    exit_status: int
    stdout: str
    stderr: str


def load_private_key(ssh_key: SSHKey) -> paramiko.PKey:
    """The key's private half as a paramiko key, straight from memory."""
    text = ssh_key.private_key
    key_class: Any = paramiko.Ed25519Key if ssh_key.key_type == "ed25519" else paramiko.RSAKey
    return key_class.from_private_key(io.StringIO(text))


def _known_host_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


class _PinOnFirstUse(paramiko.MissingHostKeyPolicy):
    """Accept the first host key a server offers and pin it on the row."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: Any) -> None:
        from apps.infrastructure.services import server_pin_host_key

        if not server_pin_host_key(
            server=self.server, algo=key.get_name(), key_b64=key.get_base64()
        ):
            # Someone pinned first; accept only if it is this very key.
            self.server.refresh_from_db(fields=["ssh_host_key", "ssh_host_key_algo"])
            if self.server.ssh_host_key != key.get_base64():
                raise HostKeyChanged(f"host key for {hostname} was pinned concurrently")


class ServerSSHClient:
    """One SSH session to a server as its `ssh_user` with its org's key."""

    def __init__(
        self,
        *,
        server: Server,
        host: str | None = None,
        port: int = 22,
        timeout: float = DEFAULT_TIMEOUT,
        trust_on_first_use: bool = False,
    ) -> None:
        self.server = server
        self.host = host or server.public_ip_address or server.private_ip_address
        self.port = port
        self.timeout = timeout
        self.trust_on_first_use = trust_on_first_use
        self._client: paramiko.SSHClient | None = None

    def connect(self) -> ServerSSHClient:
        client = paramiko.SSHClient()
        if self.server.ssh_host_key:
            pinned = paramiko.PKey.from_type_string(
                self.server.ssh_host_key_algo, base64.b64decode(self.server.ssh_host_key)
            )
            client.get_host_keys().add(
                _known_host_name(self.host, self.port), self.server.ssh_host_key_algo, pinned
            )
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
        elif self.trust_on_first_use:
            client.set_missing_host_key_policy(_PinOnFirstUse(self.server))
        else:
            raise HostKeyNotPinned(f"server {self.server.pk} has no pinned SSH host key")
        pkey = load_private_key(self.server.ssh_key)
        try:
            client.connect(
                hostname=self.host,
                port=self.port,
                username=self.server.ssh_user,
                pkey=pkey,
                timeout=self.timeout,
                banner_timeout=self.timeout,
                auth_timeout=self.timeout,
                allow_agent=False,
                look_for_keys=False,
            )
        except Exception:
            client.close()
            raise
        self._client = client
        return self

    def run(self, command: str, *, timeout: float | None = None) -> CommandResult:
        """Run a command and wait for it; output decoded as UTF-8 (invalid bytes replaced)."""
        if self._client is None:
            raise RuntimeError("not connected")
        _, stdout, stderr = self._client.exec_command(command, timeout=timeout or self.timeout)
        # A command that outlives the timeout raises TimeoutError (socket.timeout) from read().
        out = stdout.read().decode("utf-8", "replace")
        err = stderr.read().decode("utf-8", "replace")
        return CommandResult(stdout.channel.recv_exit_status(), out, err)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> ServerSSHClient:
        return self.connect()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

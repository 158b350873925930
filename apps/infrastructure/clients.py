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
import codecs
import hashlib
import io
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import paramiko
from django.core.exceptions import ValidationError

from apps.core import metrics
from apps.core.events import event_publish
from apps.core.validators import validate_target_ip
from apps.infrastructure.host_keys import server_pin_host_key
from apps.infrastructure.models import Server, SSHKey
from autoglue import tracing

DEFAULT_TIMEOUT = 10.0


class HostKeyNotPinned(Exception):
    """The server has no pinned host key and trust on first use was not allowed."""


class HostKeyChanged(Exception):
    """Someone else pinned a different host key between our read and our write."""


class CommandStopped(Exception):
    """A streamed command was stopped (canceled or out of time) before it ended."""


class TargetRefused(Exception):
    """The host resolves to an address Autoglue never connects to (metadata, deny-listed...)."""


class HostKeyMismatch(Exception):
    """The host offered a key other than the pinned one: a rebuilt host, or someone in the
    middle. The message names both fingerprints; reset-hostkey clears the pin."""


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's `SHA256:` fingerprint of a host key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


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


def open_checked_socket(host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection to `host`, refused before any packet is sent if an address it resolves
    to is not a permitted target (`validate_target_ip`). The check runs on the resolved address
    and the socket connects to that very address, so a name cannot resolve to one address when
    checked and another when used."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise TargetRefused(f"could not resolve {host}") from None
    for *_, sockaddr in infos:
        try:
            validate_target_ip(str(sockaddr[0]))
        except ValidationError as exc:
            raise TargetRefused(
                f"refusing to connect to {host}: the address it resolves to "
                + "; ".join(exc.messages)
            ) from None
    error: OSError = OSError(f"no address for {host}")
    for family, kind, proto, _, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        return sock
    raise error


def _record_exit(span: Any, status: int) -> None:
    """The exit status on a command's span (never the command: its text is ours, but its
    arguments name customers' objects)."""
    if span is not None:
        span.set_attribute("ssh.exit_status", status)


def _known_host_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


class _PinOnFirstUse(paramiko.MissingHostKeyPolicy):
    """Accept the first host key a server offers and pin it on the row."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: Any) -> None:
        if not server_pin_host_key(
            server=self.server, algo=key.get_name(), key_b64=key.get_base64()
        ):
            # Someone pinned first; accept only if it is this very key.
            self.server.refresh_from_db(fields=["ssh_host_key", "ssh_host_key_algo"])
            if self.server.ssh_host_key != key.get_base64():
                raise HostKeyChanged(f"host key for {hostname} was pinned concurrently")


class _OutputPump:
    """Reads a channel's stdout and stderr as they arrive, decoding UTF-8 across reads."""

    def __init__(self, channel: paramiko.Channel, on_output: Callable[[str, str], None]) -> None:
        self.channel = channel
        self.on_output = on_output
        self.decoders = {
            "stdout": codecs.getincrementaldecoder("utf-8")("replace"),
            "stderr": codecs.getincrementaldecoder("utf-8")("replace"),
        }

    def read(self, *, wait: float) -> bool:
        select.select([self.channel], [], [], wait)
        got = False
        if self.channel.recv_ready():
            got |= self._emit("stdout", self.channel.recv(32768))
        if self.channel.recv_stderr_ready():
            got |= self._emit("stderr", self.channel.recv_stderr(32768))
        return got

    def _emit(self, stream: str, data: bytes) -> bool:
        if data:
            self.on_output(stream, self.decoders[stream].decode(data))
        return bool(data)

    def finished(self) -> bool:
        channel = self.channel
        pending = channel.recv_ready() or channel.recv_stderr_ready()
        return not pending and (channel.exit_status_ready() or channel.closed)

    def drain(self) -> None:
        more = True
        while more:
            more = self.read(wait=0)
        for stream, decoder in self.decoders.items():
            tail = decoder.decode(b"", final=True)
            if tail:
                self.on_output(stream, tail)


def _connect_outcome(exc: BaseException) -> str:
    """The `outcome` label of a failed connection: a fixed word, never the error's text."""
    if isinstance(exc, HostKeyMismatch | HostKeyChanged | HostKeyNotPinned):
        return "host_key_mismatch"
    if isinstance(exc, paramiko.AuthenticationException):
        return "auth_failed"
    if isinstance(exc, OSError | paramiko.ssh_exception.NoValidConnectionsError):
        return "unreachable"
    return "error"


class _TracedTransport(paramiko.Transport):
    """paramiko's transport, marking the steps of a connection as spans when tracing is on: the
    handshake, the host key check (from paramiko's reading of the offered key, just before its
    check, to the start of authentication, which only a key that passed reaches; a first-use
    pin is written inside it) and the authentication."""

    host_key_span: Any = None

    def start_client(
        self, event: threading.Event | None = None, timeout: float | None = None
    ) -> None:
        with tracing.span("ssh.handshake"):
            super().start_client(event=event, timeout=timeout)

    def get_remote_server_key(self) -> paramiko.PKey:
        key = super().get_remote_server_key()
        if self.host_key_span is None:
            self.host_key_span = tracing.start_span(
                "ssh.host_key", **{"ssh.host_key.algorithm": key.get_name()}
            )
        return key

    def end_host_key_span(self, error: BaseException | None = None) -> None:
        span, self.host_key_span = self.host_key_span, False
        if span:
            tracing.end_span(span, error)

    def auth_publickey(self, username: str, key: paramiko.PKey, event: Any = None) -> list[str]:
        self.end_host_key_span()
        with tracing.span("ssh.auth"):
            return super().auth_publickey(username, key, event)


class ServerSSHClient:
    """One SSH session to a server as its `ssh_user` with its org's key, on its `ssh_port`."""

    def __init__(
        self,
        *,
        server: Server,
        host: str | None = None,
        port: int | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        trust_on_first_use: bool = False,
    ) -> None:
        self.server = server
        self.host = host or server.public_ip_address or server.private_ip_address
        self.port = port if port is not None else server.ssh_port
        self.timeout = timeout
        self.trust_on_first_use = trust_on_first_use
        self._client: paramiko.SSHClient | None = None

    def connect(self) -> ServerSSHClient:
        """Open the session (TCP, handshake, host key check, authentication); counted by
        outcome (apps.core.metrics)."""
        attributes = {"server.address": self.host, "server.port": self.port}
        with tracing.span("ssh.connect", **attributes):
            transport: list[_TracedTransport] = []
            try:
                connected = self._connect(transport)
            except BaseException as exc:
                for traced in transport:
                    traced.end_host_key_span(exc)
                metrics.ssh_connections.labels(_connect_outcome(exc)).inc()
                raise
            metrics.ssh_connections.labels("ok").inc()
            return connected

    def _connect(self, traced: list[_TracedTransport]) -> ServerSSHClient:
        def traced_transport(sock: Any, **kwargs: Any) -> paramiko.Transport:
            traced.append(_TracedTransport(sock, **kwargs))
            return traced[-1]

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
            sock = open_checked_socket(self.host, self.port, self.timeout)
        except Exception:
            client.close()
            raise
        try:
            client.connect(
                hostname=self.host,
                port=self.port,
                sock=sock,
                username=self.server.ssh_user,
                pkey=pkey,
                timeout=self.timeout,
                banner_timeout=self.timeout,
                auth_timeout=self.timeout,
                allow_agent=False,
                look_for_keys=False,
                transport_factory=traced_transport if tracing.enabled() else None,
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            sock.close()
            # Heard by the webhooks outbox (server.host_key_changed); fingerprints only.
            event_publish(
                "ssh.host_key_mismatch",
                server=self.server,
                pinned=fingerprint(exc.expected_key),
                offered=fingerprint(exc.key),
            )
            raise HostKeyMismatch(
                f"host key of {self.host}:{self.port} changed: pinned "
                f"{fingerprint(exc.expected_key)}, offered {fingerprint(exc.key)}; "
                "if the host was rebuilt, reset its host key"
            ) from None
        except Exception:
            client.close()
            sock.close()
            raise
        self._client = client
        return self

    def run(self, command: str, *, timeout: float | None = None) -> CommandResult:
        """Run a command and wait for it; output decoded as UTF-8 (invalid bytes replaced)."""
        if self._client is None:
            raise RuntimeError("not connected")
        with tracing.span("ssh.command") as span:
            _, stdout, stderr = self._client.exec_command(command, timeout=timeout or self.timeout)
            # A command that outlives the timeout raises TimeoutError (socket.timeout) from read().
            out = stdout.read().decode("utf-8", "replace")
            err = stderr.read().decode("utf-8", "replace")
            result = CommandResult(stdout.channel.recv_exit_status(), out, err)
            _record_exit(span, result.exit_status)
            return result

    def stream(
        self,
        command: str,
        *,
        on_output: Callable[[str, str], None],
        stdin: bytes | None = None,
        stop: threading.Event | None = None,
        deadline: float | None = None,
    ) -> int:
        """Run `command`, handing each piece of output to `on_output(stream, text)` as it
        arrives ("stdout"/"stderr"), and return its exit status. `stdin` is sent and closed
        first (scripts and files go this way, never in the command line). Setting `stop`, or
        passing `deadline` (a `time.monotonic()` value), closes the channel and raises
        `CommandStopped`."""
        if self._client is None:
            raise RuntimeError("not connected")
        transport = self._client.get_transport()
        if transport is None:
            raise RuntimeError("not connected")
        with tracing.span("ssh.command") as span:
            channel = transport.open_session(timeout=self.timeout)
            pump = _OutputPump(channel, on_output)
            try:
                channel.exec_command(command)
                if stdin is not None:
                    with tracing.span("ssh.upload", **{"ssh.upload.bytes": len(stdin)}):
                        channel.sendall(stdin)
                channel.shutdown_write()
                while not pump.finished():
                    if (stop is not None and stop.is_set()) or (
                        deadline is not None and time.monotonic() > deadline
                    ):
                        raise CommandStopped("stopped")
                    pump.read(wait=0.2)
                pump.drain()
                status = channel.recv_exit_status()
                _record_exit(span, status)
                return status
            finally:
                channel.close()

    def host_key_fingerprint(self) -> str:
        transport = self._client.get_transport() if self._client else None
        return fingerprint(transport.get_remote_server_key()) if transport else ""

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

"""Readable, secret-free messages for SSH failures (what operators see in `last_error`)."""

from __future__ import annotations

import socket

import paramiko

from apps.core.logging import SSH_NOT_A_SERVER
from apps.infrastructure.clients import (
    HostKeyChanged,
    HostKeyMismatch,
    HostKeyNotPinned,
    TargetRefused,
)


def describe(exc: BaseException, *, host: str, port: int, user: str) -> str:
    """Never quotes what the peer sent: a server aimed at another service must not turn the
    job log into a banner reader."""
    where = f"{host}:{port}"
    if isinstance(exc, HostKeyMismatch | HostKeyChanged | HostKeyNotPinned | TargetRefused):
        return str(exc)
    if isinstance(exc, paramiko.AuthenticationException):
        return f"{where} refused the organization's key for user {user!r} (authentication failed)"
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError | ConnectionRefusedError):
        return f"could not connect to {where}: connection refused"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"could not connect to {where}: timed out"
    if isinstance(exc, paramiko.ssh_exception.IncompatiblePeer) or (
        isinstance(exc, paramiko.SSHException) and str(exc).startswith(SSH_NOT_A_SERVER)
    ):
        return f"{where} did not answer as an SSH server"
    if isinstance(exc, paramiko.SSHException):
        return f"SSH to {where} failed (SSH protocol error: {type(exc).__name__})"
    if isinstance(exc, OSError):
        return f"could not connect to {where}: {exc.strerror or exc}"
    return f"SSH to {where} failed ({type(exc).__name__})"


# Output fragments worth naming in `last_error`, and what they usually mean.
HINTS = (
    ("Could not resolve host", "the host cannot resolve names (check its DNS)"),
    ("Permission denied", "permission denied on the host (is sudo allowed without a password?)"),
    ("Could not get lock", "the package manager is locked by another process"),
    ("E: Unable to locate package", "a package is missing from the host's apt sources"),
    ("No package", "a package is missing from the host's yum/dnf repositories"),
)


def hint(output_tail: str) -> str:
    for needle, meaning in HINTS:
        if needle in output_tail:
            return meaning
    return ""

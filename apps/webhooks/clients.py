"""The one HTTP request a delivery attempt makes, to an address checked after DNS.

The host is resolved here, every address it resolves to must pass the SSH target rules
(`apps.core.validators.validate_target_ip`: no loopback unless allowed, no link-local, no
metadata service, no operator deny-listed range), and the connection is opened to the checked
address itself, so a second resolution cannot swap in another (DNS rebinding). TLS still
verifies the certificate for the host name. Redirects are never followed (http.client does not),
the whole exchange has one deadline, and at most `body_limit` bytes of the answer are read.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

from apps.core.validators import validate_target_ip


class TargetRefused(Exception):
    """The URL's host resolves to an address Autoglue does not send to."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


def resolve_checked(host: str, port: int) -> str:
    """The first address of `host`, after checking every address it resolves to."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise TargetRefused(f"the host name does not resolve ({type(exc).__name__})") from None
    addresses = [str(info[4][0]) for info in infos]
    for address in addresses:
        try:
            validate_target_ip(address)
        except ValidationError as exc:
            raise TargetRefused(f"the host resolves to an address that {exc.messages[0]}") from None
    if not addresses:
        raise TargetRefused("the host name does not resolve")
    return addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def post(
    *, url: str, body: bytes, headers: dict[str, str], timeout: float, body_limit: int
) -> Answer:
    """POST `body` to `url`. Raises TargetRefused, OSError (refused, reset, timed out) or
    http.client.HTTPException (a malformed answer)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = resolve_checked(host, port)
    deadline = time.monotonic() + timeout
    connection_class = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(host, port, address, timeout)
    try:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        chunks: list[bytes] = []
        size = 0
        # A slow body must not hold the worker past the deadline: read in small pieces.
        while size < body_limit:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("the response body took longer than the timeout")
            if connection.sock is not None:
                connection.sock.settimeout(remaining)
            chunk = response.read1(min(4096, body_limit - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return Answer(status=response.status, body=b"".join(chunks))
    finally:
        connection.close()

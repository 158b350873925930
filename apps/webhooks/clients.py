"""The one HTTP request a delivery attempt makes, to an address checked after DNS.

The host is resolved here, every address it resolves to must pass `webhook_target_ip_check` (the
SSH target rules, and by default public addresses only), and the connection is opened to the checked
address itself, so a second resolution cannot swap in another (DNS rebinding). TLS still
verifies the certificate for the host name. Each checked address is tried in turn. Redirects are
never followed (http.client does not), the whole exchange (the name lookup, connect, TLS, send,
headers, body) has one wall-clock deadline (the webhooks worker's threads pool enforces no Celery
time limit: this deadline is the bound), and at most `body_limit` bytes of the answer are read.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import ipaddress
import os
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError

from apps.core.validators import unmapped_ip, validate_target_ip


def webhook_target_ip_check(value: str) -> None:
    """An address a webhook may be sent to: the SSH target rules (no metadata service, no
    link-local, no SSH_TARGET_DENY_CIDRS; loopback only with AUTOGLUE_ALLOW_LOOPBACK_TARGETS),
    then WEBHOOK_TARGET_DENY_CIDRS, and unless WEBHOOK_ALLOW_PRIVATE_TARGETS only public
    addresses: SSH may reach private servers by design, a webhook is a request on a tenant's
    behalf. Raises ValidationError."""
    validate_target_ip(value)
    address = unmapped_ip(value)
    for cidr in settings.WEBHOOK_TARGET_DENY_CIDRS:
        network = ipaddress.ip_network(cidr)
        if address.version == network.version and address in network:
            raise ValidationError("must not be in a denied range", code="invalid")
    if settings.WEBHOOK_ALLOW_PRIVATE_TARGETS:
        return
    # Not global: RFC 1918, ULA, CGNAT (100.64/10), loopback, link-local, documentation ranges.
    carried = getattr(address, "sixtofour", None)  # a 6to4 relay reaches the IPv4 inside
    if not address.is_global or (carried is not None and not carried.is_global):
        raise ValidationError("must not be a private address", code="invalid")


class TargetRefused(Exception):
    """The URL's host resolves to an address Autoglue does not send to."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


# Name lookups run here so a resolver that never answers cannot hold a delivery past its
# deadline: the webhooks worker is a threads pool, where Celery's time limits do not apply. A
# lookup that times out still holds its thread until the system resolver gives up, so one host
# may hold at most RESOLVER_STUCK_PER_HOST of them (those left by earlier attempts included):
# a further lookup of that host fails at once as timed out, and a tenant whose DNS hangs cannot
# take the threads every other endpoint's lookups need. Threads are made only when needed, so
# the pool's size is a ceiling, sized well above the worker's concurrency.
_resolver: tuple[int, concurrent.futures.ThreadPoolExecutor, dict[str, int]] | None = None
_resolver_lock = threading.Lock()
RESOLVER_STUCK_PER_HOST = 2


def _resolver_threads() -> int:
    """The lookup threads' ceiling: each delivery in flight needs one, and hosts that hang keep
    at most RESOLVER_STUCK_PER_HOST each beside them."""
    return max(4 * int(settings.WEBHOOK_WORKER_CONCURRENCY), 16)


def _resolver_state() -> tuple[concurrent.futures.ThreadPoolExecutor, dict[str, int]]:
    """This process's lookup threads and its count of unfinished lookups per host (made after a
    fork, never inherited from the parent). Call with `_resolver_lock` held."""
    global _resolver
    if _resolver is None or _resolver[0] != os.getpid():
        pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=_resolver_threads(), thread_name_prefix="webhook-dns"
        )
        _resolver = (os.getpid(), pool, {})
    return _resolver[1], _resolver[2]


def _lookup(host: str, port: int, timeout: float | None) -> list:
    if timeout is None:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    key = host.lower().rstrip(".")
    with _resolver_lock:
        pool, unfinished = _resolver_state()
        if unfinished.get(key, 0) >= RESOLVER_STUCK_PER_HOST:
            raise TimeoutError("the host name did not resolve in time")
        unfinished[key] = unfinished.get(key, 0) + 1

        def finished(_: concurrent.futures.Future) -> None:
            with _resolver_lock:
                left = unfinished.get(key, 1) - 1
                if left > 0:
                    unfinished[key] = left
                else:
                    unfinished.pop(key, None)

        future = pool.submit(lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    # Outside the lock: a lookup that ended already runs its callback at once, in this thread.
    future.add_done_callback(finished)
    try:
        return future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()  # a lookup still queued is dropped; a running one ends on its own
        raise TimeoutError("the host name did not resolve in time") from None


def resolve_checked(host: str, port: int, timeout: float | None = None) -> list[str]:
    """Every address of `host` (in resolver order), after checking every one of them; with a
    `timeout` the lookup must answer within it (TimeoutError)."""
    try:
        infos = _lookup(host, port, timeout)
    except (socket.gaierror, UnicodeError):
        raise TargetRefused("the host name does not resolve") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        try:
            webhook_target_ip_check(address)
        except ValidationError as exc:
            raise TargetRefused(f"the host resolves to an address that {exc.messages[0]}") from None
    if not addresses:
        raise TargetRefused("the host name does not resolve")
    return addresses


class _Deadline:
    """One wall-clock deadline over connect, TLS, sending, the headers and the body. Before every
    step the socket's timeout is set to the time left; a watchdog also shuts the socket down at
    the deadline, so a peer trickling bytes (each recv under the timeout) cannot outlast it."""

    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds
        self._sock: socket.socket | None = None
        self._timer: threading.Timer | None = None
        self.fired = False

    def left(self) -> float:
        remaining = self.at - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the exchange took longer than the timeout")
        return remaining

    def watch(self, sock: socket.socket) -> None:
        self.cancel()
        self._sock = sock
        self._timer = threading.Timer(self.left(), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _PinnedMixin:
    """Connects to the checked addresses in turn (each within the deadline), never re-resolving."""

    _addresses: list[str]
    _deadline: _Deadline
    port: int

    def _open(self) -> socket.socket:
        last: OSError | None = None
        for address in self._addresses:
            try:
                sock = socket.create_connection((address, self.port), self._deadline.left())
            except TimeoutError:
                raise
            except OSError as exc:
                last = exc
                continue
            self._deadline.watch(sock)
            return sock
        raise last or OSError("no address to connect to")


class _PinnedHTTPConnection(_PinnedMixin, http.client.HTTPConnection):
    def __init__(self, host: str, port: int, addresses: list[str], deadline: _Deadline) -> None:
        super().__init__(host, port, timeout=deadline.left())
        self._addresses = addresses
        self._deadline = deadline

    def connect(self) -> None:
        self.sock = self._open()


class _PinnedHTTPSConnection(_PinnedMixin, http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, addresses: list[str], deadline: _Deadline) -> None:
        super().__init__(host, port, timeout=deadline.left(), context=ssl.create_default_context())
        self._addresses = addresses
        self._deadline = deadline

    def connect(self) -> None:
        sock = self._open()
        sock.settimeout(self._deadline.left())
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]
        self._deadline.watch(self.sock)


def post(
    *, url: str, body: bytes, headers: dict[str, str], timeout: float, body_limit: int
) -> Answer:
    """POST `body` to `url` within `timeout` seconds in all. Raises TargetRefused, TimeoutError,
    OSError (refused, reset) or http.client.HTTPException (a malformed answer)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    deadline = _Deadline(timeout)
    addresses = resolve_checked(host, port, deadline.left())
    connection_class = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(host, port, addresses, deadline)

    def step() -> None:
        if connection.sock is not None:
            connection.sock.settimeout(deadline.left())

    try:
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        connection.request("POST", path, body=body, headers=headers)
        step()
        response = connection.getresponse()
        chunks: list[bytes] = []
        size = 0
        while size < body_limit:
            step()
            chunk = response.read1(min(4096, body_limit - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if deadline.fired:
            # The watchdog's shutdown reads as an end of file: the answer was cut, not complete.
            raise TimeoutError("the exchange took longer than the timeout")
        return Answer(status=response.status, body=b"".join(chunks))
    except (OSError, http.client.HTTPException):
        # The watchdog's shutdown surfaces as a reset or a truncated answer: it is the timeout.
        if deadline.fired or time.monotonic() >= deadline.at:
            raise TimeoutError("the exchange took longer than the timeout") from None
        raise
    finally:
        deadline.cancel()
        connection.close()

"""The name lookup of a delivery: one tenant's hanging DNS must not starve every other's."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from apps.webhooks import clients


@pytest.fixture
def hanging_dns(monkeypatch, settings):
    """`getaddrinfo` at the network edge: names under `.hang.test` never answer (until the test
    ends), `healthy.test` is loopback at once."""
    settings.AUTOGLUE_ALLOW_LOOPBACK_TARGETS = True
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    release = threading.Event()
    real = socket.getaddrinfo

    def edge(host, *args, **kwargs):
        if host.endswith(".hang.test"):
            release.wait(30)
            raise socket.gaierror("gave up")
        if host == "healthy.test":
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", edge)
    monkeypatch.setattr(clients, "_resolver", None)  # a fresh pool, none of another test's threads
    yield
    release.set()


def test_a_healthy_host_resolves_in_time_while_two_hosts_hang(hanging_dns):
    # Two endpoints whose DNS hangs, retried far more often than the worker has threads.
    for _ in range(clients._resolver_threads() + 16):
        for host in ("a.hang.test", "b.hang.test"):
            with pytest.raises(TimeoutError):
                clients.resolve_checked(host, 443, timeout=0.01)

    assert clients.resolve_checked("healthy.test", 443, timeout=2) == ["127.0.0.1"]


def test_a_host_with_its_lookups_stuck_fails_at_once_instead_of_waiting_its_timeout(hanging_dns):
    for _ in range(clients.RESOLVER_STUCK_PER_HOST):
        with pytest.raises(TimeoutError):
            clients.resolve_checked("c.hang.test", 443, timeout=0.05)

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        clients.resolve_checked("c.hang.test", 443, timeout=5)
    assert time.monotonic() - started < 1
    # Another host is not refused for it.
    with pytest.raises(TimeoutError):
        clients.resolve_checked("d.hang.test", 443, timeout=0.05)

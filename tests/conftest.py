"""Fixtures for the whole-platform tests in this folder."""

from __future__ import annotations

import pytest

from tests import live


@pytest.fixture
def redis_server(tmp_path):
    """A redis-server of the test's own (tests.live.RedisServer), for tests that kill it."""
    server = live.RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()

"""A live server for the conformance runs: gunicorn with the production settings on the test
database, started once per module. Tests using it are `django_db(transaction=True)`: the rows
they create are committed (the server is another process) and flushed after each test."""

from __future__ import annotations

import pytest
import requests

# Imported at collection, not when the first document is loaded deep inside a test. pytest
# rewrites schemathesis' modules (it is a pytest plugin), and CPython 3.11.7 can fail to parse its
# large schema-definitions module that deep in the stack ("SystemError: AST constructor recursion
# depth mismatch", a CPython bug fixed in later 3.11 releases).
import schemathesis.specs.openapi.adapter.v2  # noqa: F401
import schemathesis.specs.openapi.adapter.v3_0  # noqa: F401
import schemathesis.specs.openapi.definitions  # noqa: F401

from tests import live
from tests.conformance.support import World, make_world, seed_objects


@pytest.fixture(scope="module")
def live_server_url(django_db_setup, django_db_blocker, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("conformance")
    with django_db_blocker.unblock():
        # The runs send a thousand requests from one address and one user within a minute.
        limits = ("RATE_LIMIT", "RATE_LIMIT_USER", "RATE_LIMIT_KEY", "RATE_LIMIT_AUTH")
        no_limits = dict.fromkeys((*limits, "RATE_LIMIT_AUTH_FAILURES"), "")
        env = live.process_env(LOG_LEVEL="ERROR", **no_limits)
    web, url = live.start_web(tmp, env, workers=2)
    try:
        yield url
    finally:
        web.stop()


@pytest.fixture
def world(live_server_url, transactional_db) -> World:
    made = make_world()
    # A run whose credentials the server refuses would only ever see documented 401s.
    me = requests.get(f"{live_server_url}/api/v1/me", headers=made.headers, timeout=30)
    assert me.status_code == 200, me.text
    return made


@pytest.fixture
def seeded(world):
    """Fresh objects of the world's organization, committed, for one operation's path."""
    return lambda method, path: seed_objects(world, method, path)

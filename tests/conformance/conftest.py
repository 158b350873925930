"""A live server for the conformance runs: gunicorn with the production settings on the test
database, started once per module. Tests using it are `django_db(transaction=True)`: the rows
they create are committed (the server is another process) and flushed after each test."""

from __future__ import annotations

import contextlib
import gc
import importlib
import pkgutil

import pytest
import requests

from tests import live
from tests.conformance.support import World, make_world, seed_objects


def _import_schemathesis_up_front() -> None:
    """Every schemathesis module, now, with the garbage collector paused.

    schemathesis is a pytest plugin, so pytest rewrites its modules as they are imported, and
    several are imported lazily, deep inside a test. CPython 3.11.7's `ast.parse` fails with
    "SystemError: AST constructor recursion depth mismatch" when a garbage collection runs Python
    finalizers while it builds a large tree (its schema modules are large), which happened at
    random in full runs. Importing them all here, at collection, with garbage collection paused,
    parses each once in a quiet moment; later imports find them loaded."""
    import schemathesis

    gc.disable()
    try:
        for module in pkgutil.walk_packages(schemathesis.__path__, "schemathesis."):
            with contextlib.suppress(Exception):
                importlib.import_module(module.name)
    finally:
        gc.enable()


_import_schemathesis_up_front()


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

"""The web role's connection pool across a fork (apps/core/db_pool.py): a child never uses or
closes the sessions of a pool its parent opened. Run in a process of its own with the web role's
settings, against the test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from django.conf import settings
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)

SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import django
    django.setup()
    from django.db import connection

    def backend_pid():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            return cursor.fetchone()[0]

    before = backend_pid()
    connection.close()  # back to the parent's pool, idle, as between two requests
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read)
        try:
            mine = backend_pid()
            connection.close()
            connection.close_pool()
            os.write(write, json.dumps({"child": mine}).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    seen = json.loads(os.read(read, 1000))
    after = backend_pid()
    print(json.dumps({"before": before, "after": after, **seen}))
    """
)


def test_a_forked_child_opens_its_own_pool_and_the_parents_pooled_session_survives():
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "autoglue.test_settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "AUTOGLUE_WEB_PROCESS": "true",
        "DATABASE_POOL_MAX_SIZE": "2",
    }
    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", SCRIPT],
        env=env,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    pids = json.loads(done.stdout.strip().splitlines()[-1])
    # The child had a session of its own, and closing its pool left the parent's session open:
    # the parent's next query ran on the same pooled session as before the fork.
    assert pids["child"] != pids["before"]
    assert pids["after"] == pids["before"]

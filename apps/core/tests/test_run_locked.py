"""`manage.py run_locked`: the migration Job's guard against a second, concurrent setup."""

from __future__ import annotations

import sys
import threading
import time

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from apps.core.management.commands.run_locked import advisory_key

pytestmark = pytest.mark.django_db(transaction=True)


def _other_session() -> psycopg.Connection:
    db = connection.settings_dict
    return psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=True
    )


def _run_locked(*argv: str) -> None:
    try:
        call_command("run_locked", *argv)
    finally:
        connection.close()  # this thread's own connection


def test_a_second_setup_waits_for_the_one_holding_the_lock(tmp_path):
    marker = tmp_path / "ran"
    script = f"open({str(marker)!r}, 'w').write('x')"
    with _other_session() as first:
        first.execute("SELECT pg_advisory_lock(%s)", [advisory_key("setup")])
        second = threading.Thread(
            target=_run_locked, args=("setup", "--", sys.executable, "-c", script)
        )
        second.start()
        time.sleep(2)
        assert not marker.exists()  # still waiting: the first setup holds the lock
        first.execute("SELECT pg_advisory_unlock(%s)", [advisory_key("setup")])
        second.join(timeout=30)
    assert marker.exists()


def test_the_lock_is_released_and_the_exit_code_kept_when_the_command_fails():
    with pytest.raises(CommandError) as failed:
        call_command("run_locked", "setup", "--", sys.executable, "-c", "raise SystemExit(3)")
    assert failed.value.returncode == 3
    with _other_session() as other:
        got = other.execute("SELECT pg_try_advisory_lock(%s)", [advisory_key("setup")]).fetchone()
    assert got == (True,)

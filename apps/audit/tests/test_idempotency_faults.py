"""Idempotency keys when the database fails around the commit, through gunicorn + uvicorn and a
PostgreSQL of the test's own (tests/postgres.py), restarted while a write is committing."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from django.db import connection

from apps.accounts import services as account_services
from tests.live import process_env, start_web, wait_until
from tests.postgres import OwnPostgres

pytestmark = pytest.mark.django_db(transaction=True)

# Makes the transaction that inserts a cluster wait at its commit for a synchronous standby
# that never comes: the commit is durable on the server (it survives a restart) but not yet
# acknowledged, the moment "committed but answered with an error" happens in production.
HOLD_AT_COMMIT = """
CREATE FUNCTION hold_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'on', true);
    RETURN NEW;
END $$;
CREATE TRIGGER hold_at_commit AFTER INSERT ON clusters_cluster
    FOR EACH ROW EXECUTE FUNCTION hold_at_commit();
"""


@pytest.fixture
def own_postgres():
    server = OwnPostgres()
    yield server
    server.destroy()


# Connections kept per thread, or the web role's pool (docs/architecture.md#database-connections):
# either way the connection the restart broke is never used again.
@pytest.mark.parametrize(
    "connections",
    [{"DATABASE_CONN_MAX_AGE": "60"}, {"DATABASE_POOL_MAX_SIZE": "2"}],
    ids=["persistent", "pool"],
)
def test_a_retry_after_the_database_restarted_around_the_commit_creates_one_cluster(
    tmp_path, own_postgres, org, member, connections
):
    created = account_services.api_key_create_for_user(user=member, name="tf")
    # Every commit is local except the held one (the trigger asks for the standby).
    own_postgres.start(synchronous_standby_names="ghost", synchronous_commit="local")
    own_postgres.copy_database(connection.settings_dict, "autoglue")
    with own_postgres.connect("autoglue") as db:
        db.execute(HOLD_AT_COMMIT)
    env = process_env(DATABASE_URL=own_postgres.url("autoglue"), **connections)
    web, url = start_web(tmp_path, env, workers=1)
    headers = {
        "X-API-KEY": created.plain,
        "X-Org-ID": str(org.pk),
        "Idempotency-Key": "apply-7",
        "Content-Type": "application/json",
    }

    def post() -> requests.Response:
        return requests.post(
            f"{url}/api/v1/clusters", json={"name": "prod"}, headers=headers, timeout=60
        )

    try:
        first: list[requests.Response] = []
        sender = threading.Thread(target=lambda: first.append(post()))
        sender.start()

        def held() -> bool:
            with own_postgres.connect("autoglue") as db:
                row = db.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'"
                ).fetchone()
            return bool(row and row[0])

        wait_until(held, timeout=30, what="the write waiting at its commit")
        own_postgres.stop("fast")
        own_postgres.start()
        sender.join(timeout=60)
        # The client never learnt the outcome: told to retry, not given a 500.
        assert first and first[0].status_code == 503, first[0].text if first else "no answer"
        assert first[0].headers["Retry-After"] == "1"

        answers = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            answer = post()
            answers.append(answer.status_code)
            if answer.status_code < 500 and answer.status_code != 409:
                break
            time.sleep(0.5)

        assert answer.status_code == 201, answers
        assert answer.headers["Idempotent-Replayed"] == "true"  # the commit had landed
        with own_postgres.connect("autoglue") as db:
            rows = db.execute("SELECT id FROM clusters_cluster WHERE name = 'prod'").fetchall()
        assert [str(row[0]) for row in rows] == [answer.json()["id"]]
    finally:
        web.stop()

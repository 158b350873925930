"""Authentication at the edge, through the web role as deployed (gunicorn + uvicorn workers):
who the client is when it forges `X-Forwarded-For`, revocation seen by another web process at
once, and API keys surviving a Redis outage."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import uuid
from pathlib import Path

import pytest
import requests

from apps.accounts.services import api_key_create_for_org, api_key_create_for_user
from apps.audit import events as audit_events
from apps.audit.models import AuditEntry
from tests import live

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class OwnRedis:
    """A redis-server of this test's own on a free loopback port, so killing it harms no one."""

    def __init__(self, tmp: Path) -> None:
        self.port = live.free_port()
        self.dir = tmp / f"redis-{self.port}"
        self.dir.mkdir()
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - the Debian binary, loopback only
            [
                REDIS_SERVER,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        live.wait_until(self._answers, 10, "redis-server to start", interval=0.05)

    def _answers(self) -> bool:
        import redis

        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path):
    server = OwnRedis(tmp_path)
    yield server
    server.kill()


def _bad_key_requests(url: str, count: int) -> list[int]:
    """`count` requests with a wrong user key, each claiming another address in XFF."""
    statuses = []
    for _ in range(count):
        forged = f"6.6.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
        response = requests.get(
            f"{url}/api/v1/me",
            headers={"X-API-KEY": "u_notakey_wrongsecret", "X-Forwarded-For": forged},
            timeout=10,
        )
        statuses.append(response.status_code)
    return statuses


def test_a_forged_forwarded_for_neither_opens_a_new_failure_bucket_nor_reaches_the_audit_log(
    member, tmp_path
):
    # An hourly window, so the test never straddles the start of a new one.
    env = live.process_env(RATE_LIMIT_AUTH_FAILURES="5/h", TRUSTED_PROXY_COUNT="0")
    web, url = live.start_web(tmp_path, env, workers=1)
    try:
        key = api_key_create_for_user(user=member)
        doomed = api_key_create_for_user(user=member)
        response = requests.delete(
            f"{url}/api/v1/me/api-keys/{doomed.key.pk}",
            headers={"X-API-KEY": key.plain, "X-Forwarded-For": "6.6.6.6"},
            timeout=10,
        )
        assert response.status_code == 204, response.text
        entry = AuditEntry.objects.get(event=audit_events.KEY_REVOKE, object_id=str(doomed.key.pk))
        assert entry.ip == "127.0.0.1"

        statuses = _bad_key_requests(url, 8)
        # Every forged address is one client, the socket peer: its failure budget runs out.
        assert statuses[:5] == [401] * 5
        assert statuses[5:] == [429] * 3
    finally:
        web.stop()


@pytest.fixture
def owner_key(owner):
    return api_key_create_for_user(user=owner).plain


def _servers(url: str, org_key) -> int:
    response = requests.get(
        f"{url}/api/v1/servers",
        headers={"X-ORG-KEY": org_key.plain, "X-ORG-SECRET": org_key.secret},
        timeout=10,
    )
    return response.status_code


def _wait_for_the_limiter(url: str, org_key) -> None:
    """Until the web process uses the cache again (its rate-limit headers are back)."""

    def counted() -> bool:
        response = requests.get(
            f"{url}/api/v1/servers",
            headers={"X-ORG-KEY": org_key.plain, "X-ORG-SECRET": org_key.secret},
            timeout=10,
        )
        return "RateLimit-Limit" in response.headers

    live.wait_until(counted, 20, "the rate limiter to use Redis again", interval=0.5)


def _revoke(url: str, org, owner_key: str, org_key) -> requests.Response:
    return requests.delete(
        f"{url}/api/v1/orgs/{org.pk}/api-keys/{org_key.key.pk}",
        headers={"X-API-KEY": owner_key},
        timeout=10,
    )


def test_an_org_key_revoked_through_one_web_process_is_refused_by_the_other_at_once(
    org, owner_key, tmp_path
):
    env = live.process_env()
    first, first_url = live.start_web(tmp_path, env, workers=1)
    second, second_url = live.start_web(tmp_path, env, workers=1)
    try:
        org_key = api_key_create_for_org(organization=org)
        # Both processes have verified (and remember) the key.
        assert _servers(first_url, org_key) == 200
        assert _servers(second_url, org_key) == 200
        assert _servers(second_url, org_key) == 200

        assert _revoke(first_url, org, owner_key, org_key).status_code == 204
        assert _servers(second_url, org_key) == 401
        assert _servers(first_url, org_key) == 401
    finally:
        first.stop()
        second.stop()


def test_with_redis_down_keys_still_authenticate_from_the_database_and_revocation_holds(
    org, member, owner_key, own_redis, tmp_path
):
    env = live.process_env(
        REDIS_URL=own_redis.url, GOOGLE_CLIENT_ID="client", GOOGLE_CLIENT_SECRET="secret"
    )
    web, url = live.start_web(tmp_path, env, workers=1)
    try:
        member_key = api_key_create_for_user(user=member).plain
        org_key = api_key_create_for_org(organization=org)
        doomed = api_key_create_for_org(organization=org)
        for key in (org_key, doomed):
            assert _servers(url, key) == 200
        me = {"X-API-KEY": member_key}
        assert requests.get(f"{url}/api/v1/me", headers=me, timeout=10).status_code == 200

        own_redis.kill()
        statuses = []
        for _ in range(3):
            statuses.append(requests.get(f"{url}/api/v1/me", headers=me, timeout=10).status_code)
            statuses.append(_servers(url, org_key))
        assert statuses == [200] * 6
        # A key this process has never seen is verified against the database alone.
        fresh = api_key_create_for_org(organization=org)
        assert _servers(url, fresh) == 200
        # Revocation works, and holds at once, while the cache is down.
        assert _revoke(url, org, owner_key, doomed).status_code == 204
        assert _servers(url, doomed) == 401
        # What truly needs Redis (here the sign-in's cached provider discovery) is a 503.
        started = requests.post(f"{url}/api/v1/auth/google/start", timeout=10)
        assert started.status_code == 503, started.text
        assert started.json()["code"] == "service_unavailable"
        assert int(started.headers["Retry-After"]) > 0

        own_redis.start()
        _wait_for_the_limiter(url, org_key)
        # Back to normal, and the revocation made during the outage still holds.
        assert _servers(url, org_key) == 200
        assert _servers(url, doomed) == 401
        # Nothing was a 500, in the access log of every request made.
        assert not re.search(r"status\W+500\b", web.log.read_text(errors="replace"))
    finally:
        web.stop()


def test_a_key_revoked_while_redis_was_frozen_stays_revoked_when_it_answers_again(
    org, owner_key, own_redis, tmp_path
):
    env = live.process_env(REDIS_URL=own_redis.url)
    web, url = live.start_web(tmp_path, env, workers=1)
    try:
        org_key = api_key_create_for_org(organization=org)
        doomed = api_key_create_for_org(organization=org)
        for key in (org_key, doomed):  # both remembered, in the process and in Redis
            assert _servers(url, key) == 200
        own_redis.signal(signal.SIGSTOP)  # accepts connections, answers nothing
        assert _servers(url, org_key) == 200
        assert _revoke(url, org, owner_key, doomed).status_code == 204
        assert _servers(url, doomed) == 401
        # Redis answers again, with the entry for the revoked key it never heard was deleted.
        own_redis.signal(signal.SIGCONT)
        _wait_for_the_limiter(url, org_key)
        assert _servers(url, doomed) == 401
        assert _servers(url, org_key) == 200
    finally:
        own_redis.signal(signal.SIGCONT)
        web.stop()

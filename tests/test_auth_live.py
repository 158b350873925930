"""Authentication at the edge, through the web role as deployed (gunicorn + uvicorn workers):
who the client is when it forges `X-Forwarded-For`, revocation seen by another web process at
once, and API keys surviving a Redis outage."""

from __future__ import annotations

import shutil
import subprocess
import time
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
    env = live.process_env(RATE_LIMIT_AUTH_FAILURES="5/m", TRUSTED_PROXY_COUNT="0")
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

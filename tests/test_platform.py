"""The README's run command on the embedded default: a server that answers and a worker that works.

Starts `manage.py runplatform` the way `make run` does, with no DATABASE_URL and no REDIS_URL,
in a data folder of its own, then stops it with Ctrl-C (SIGINT) and checks nothing is left.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _embedded_env(data_dir: Path) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="autoglue.settings",
        AUTOGLUE_ENV="development",
        AUTOGLUE_DATA_DIR=str(data_dir),
        DJANGO_SECRET_KEY="platform-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        LOG_FORMAT="console",
    )
    return env


def _wait_for(url: str, deadline: float) -> requests.Response:
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            return requests.get(url, timeout=2)
        except requests.RequestException as exc:
            last_error = exc
            time.sleep(0.5)
    raise AssertionError(f"{url} never answered: {last_error}")


def _postgres_processes(data_dir: Path) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True)
    return [
        line for line in out.stdout.splitlines() if "postgres" in line and str(data_dir) in line
    ]


def test_run_command_serves_health_runs_a_task_and_stops_cleanly_on_ctrl_c(tmp_path):
    data_dir = tmp_path / "data"
    env = _embedded_env(data_dir)
    port = _free_port()
    log = (tmp_path / "platform.log").open("w+")
    platform = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "runplatform",
            "--port",
            str(port),
            "--web-workers",
            "1",
            "--concurrency",
            "1",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        health = _wait_for(f"http://127.0.0.1:{port}/api/v1/healthz", time.monotonic() + 120)
        assert health.status_code == 200
        assert health.json() == {"status": "ok"}
        ready = requests.get(f"http://127.0.0.1:{port}/api/v1/readyz", timeout=5)
        assert ready.json() == {
            "status": "ok",
            "checks": {"database": "ok", "broker": "ok", "queues": "ok"},
        }

        pong = subprocess.run(
            [sys.executable, "manage.py", "celery_ping", "--timeout", "60"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert pong.returncode == 0, pong.stderr
        assert pong.stdout.strip() == "pong"
    finally:
        platform.send_signal(signal.SIGINT)
        try:
            platform.wait(timeout=60)
        except subprocess.TimeoutExpired:
            platform.kill()
            raise
    log.seek(0)
    output = log.read()
    assert platform.returncode == 0, output
    assert "Stopped." in output
    # The embedded PostgreSQL went down with the last process that used it.
    deadline = time.monotonic() + 20
    while _postgres_processes(data_dir) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _postgres_processes(data_dir) == []

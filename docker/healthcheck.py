"""Container health check for the role this container runs (`AUTOGLUE_ROLE`: web, worker or
beat; one image runs all three). Exit 0 when healthy. Kept free of Django imports so a probe
costs little; the worker check is Celery's own ping of this very worker."""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

BEAT_PIDFILE = "/tmp/celerybeat.pid"  # noqa: S108 - the container's own /tmp, set by its command


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


def worker() -> int:
    # Celery names a worker celery@<host name>; in a container that is $HOSTNAME.
    node = f"celery@{os.environ.get('HOSTNAME') or os.uname().nodename}"
    celery = str(Path(sys.executable).with_name("celery"))
    argv = [celery, "-A", "autoglue", "inspect", "ping", "--destination", node, "--timeout", "5"]
    os.execv(celery, argv)  # noqa: S606 - a fixed argv
    return 1  # not reached


def beat() -> int:
    # Beat writes its pid file at start and removes it when it stops; the process must be alive.
    pid = int(Path(BEAT_PIDFILE).read_text().strip())
    os.kill(pid, 0)
    return 0


if __name__ == "__main__":
    role = os.environ.get("AUTOGLUE_ROLE", "web")
    checks = {"web": web, "worker": worker, "beat": beat}
    if role not in checks:
        sys.exit(f"unknown AUTOGLUE_ROLE {role!r}")
    try:
        sys.exit(checks[role]())
    except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy", with a reason
        sys.exit(f"{role} unhealthy: {type(exc).__name__}: {exc}")

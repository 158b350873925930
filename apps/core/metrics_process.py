"""Where each process keeps its Prometheus samples, and the hooks that set it up.

Gunicorn and Celery prefork run many processes; prometheus-client's multiprocess mode gives each
one a file per metric type in `PROMETHEUS_MULTIPROC_DIR`, and the scrape adds them up. The
known traps, handled here:

- each role uses its own folder under the directory (`<role>-<host>-<pid>`), set in the
  environment before any worker starts (they inherit it) and emptied when the role starts
  (`role_start`): files from a previous run would otherwise be added to this one's counters,
  and two roles given the same directory would empty or add up each other's files;
- files are keyed by a *stable* worker id (gunicorn's worker slot, billiard's process index),
  not the pid: a recycled worker continues its slot's files instead of leaving a new set behind
  each time (prometheus/client_python #275);
- a worker that ends has its live gauges (in-flight requests, open streams) removed
  (`process_dead`), so they do not count a process that is gone.

Metrics are on only when `METRICS_TOKEN` (or `METRICS_TOKEN_FILE`) is set. Off, nothing here
touches the disk and the metric objects are plain in-memory values.

Importable without Django set up: gunicorn's master loads it through `autoglue/gunicorn_conf.py`.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import shutil
import socket
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# Set in a process once it knows its stable id; inherited by nothing that matters (a forked
# child replaces it in its own post-fork hook).
_process_id: str = ""


def metrics_token() -> str:
    """The bearer token scrapers must present ("" = metrics off). `METRICS_TOKEN_FILE` works as
    for every variable (autoglue/env.py)."""
    from autoglue.env import FileBackedEnviron

    return FileBackedEnviron().get("METRICS_TOKEN", "") or ""


def enabled() -> bool:
    return bool(metrics_token())


def process_id() -> str:
    """The name of this process's sample files: its stable id once a hook set one, the pid
    before that (a master that touches a metric before forking)."""
    return _process_id or f"pid{os.getpid()}"


def set_process_id(value: str) -> None:
    global _process_id
    _process_id = value


def role_start(role: str) -> str | None:
    """Prepare this role's sample directory before its processes start: use the configured one
    (created if missing) or make one in the temporary folder, then empty it. Returns the path,
    or None when metrics are off. Only the process that owns the directory calls this (gunicorn's
    master, Celery's main process, beat)."""
    if not enabled():
        return None
    given = os.environ.get(DIR_VARIABLE) or tempfile.mkdtemp(prefix=f"autoglue-metrics-{role}-")
    directory = _role_folder(Path(given), role)
    os.environ[DIR_VARIABLE] = path = str(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
    return path


def _role_folder(given: Path, role: str) -> Path:
    """This role's own folder under the configured one: `<role>-<host>-<pid of the owner>`.
    A folder given to several roles (or hosts sharing a volume) is then never emptied, nor its
    files added up, by another role. Folders this role left on this host from processes that
    are gone are removed; the others are not ours to touch."""
    prefix = f"{role}-{re.sub(r'[^A-Za-z0-9_.-]', '_', socket.gethostname())}-"
    if given.name == f"{prefix}{os.getpid()}":  # already set up by this process
        return given
    if given.is_dir():
        for old in given.glob(f"{prefix}*"):
            pid = old.name[len(prefix) :]
            if old.is_dir() and pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(old, ignore_errors=True)
    return given / f"{prefix}{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, owned by someone else
        return True
    return True


def process_dead(identifier: str) -> None:
    """Forget the live gauges of a process that ended (its counters stay: they were counted)."""
    path = os.environ.get(DIR_VARIABLE)
    if not path or not enabled():
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(identifier, path)


# --- gunicorn (autoglue/gunicorn_conf.py calls these) ------------------------------------------


def gunicorn_on_starting(server: Any) -> None:
    role_start("web")


def gunicorn_pre_fork(server: Any, worker: Any) -> None:
    """Give the worker about to start the lowest slot no live worker holds: a replacement
    takes over the files of the worker it replaces."""
    taken = {getattr(w, "metrics_slot", None) for w in server.WORKERS.values()}
    slot = 0
    while slot in taken:
        slot += 1
    worker.metrics_slot = slot


def gunicorn_post_fork(server: Any, worker: Any) -> None:
    set_process_id(f"web{getattr(worker, 'metrics_slot', os.getpid())}")


def gunicorn_child_exit(server: Any, worker: Any) -> None:
    """In the master, for every worker that ended, killed ones too (`worker_exit` runs only
    in a worker that exits by itself)."""
    process_dead(f"web{getattr(worker, 'metrics_slot', worker.pid)}")


# --- Celery (autoglue/celery.py connects these) -------------------------------------------------


def celery_role_start() -> None:
    """Celery's main process (a worker or beat) as it loads the tasks, before Django is set up
    and before a pool forks: the directory (once), then the process's own id."""
    if _process_id:
        return
    if role_start("celery") is None:
        return
    set_process_id("main")


def celery_child_start() -> None:
    """A prefork child: billiard numbers the pool's slots, and a replacement reuses its slot."""
    from billiard.process import current_process

    index = getattr(current_process(), "index", None)
    set_process_id(f"p{index}" if index is not None else f"pid{os.getpid()}")


def celery_child_end() -> None:
    process_dead(process_id())


# --- the scrape ----------------------------------------------------------------------------------


def registry(*extra_collectors: Any) -> Any:
    """A registry that adds up every process's files (or, with no directory, this process's
    own samples), plus `extra_collectors` (the web's PostgreSQL gauges)."""
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

    target = CollectorRegistry()
    if os.environ.get(DIR_VARIABLE):
        multiprocess.MultiProcessCollector(target)
    else:
        target.register(_ProcessSamples(REGISTRY))
    for collector in extra_collectors:
        target.register(collector)
    return target


class _ProcessSamples:
    """This process's own registry, read through (a single-process server, metrics without a
    sample directory)."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def collect(self) -> Any:
        return self.source.collect()


def authorized(header: str) -> bool:
    """Whether an `Authorization` header carries the metrics token (constant-time compare)."""
    token = metrics_token()
    scheme, _, presented = (header or "").partition(" ")
    if not token or scheme.lower() != "bearer":
        return False
    try:
        # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError, which
        # would be a 500 for any client sending one).
        return hmac.compare_digest(
            presented.encode("utf-8", "surrogateescape"), token.encode("utf-8", "surrogateescape")
        )
    except (TypeError, ValueError, UnicodeError):
        return False


class _MetricsHandler(BaseHTTPRequestHandler):
    """`GET /metrics` with the bearer token; 401 without it, 404 elsewhere."""

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if self.path.split("?", 1)[0] != "/metrics":
            self._answer(404, b"not found\n", "text/plain")
        elif not authorized(self.headers.get("Authorization", "")):
            self._answer(401, b"unauthorized\n", "text/plain")
        else:
            self._answer(200, generate_latest(registry()), CONTENT_TYPE_LATEST)

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        """Scrapes every few seconds would drown the worker's log."""


def serve(role: str) -> ThreadingHTTPServer | None:
    """Serve this role's metrics on `METRICS_PORT` (bound to `METRICS_BIND`, all addresses by
    default, as a pod's port must be) in a daemon thread. None when metrics or the port are off,
    or the port is taken (logged: a worker without metrics still works)."""
    port = os.environ.get("METRICS_PORT", "")
    if not enabled() or not port:
        return None
    bind = os.environ.get("METRICS_BIND", "0.0.0.0")  # noqa: S104 - scraped from other pods
    try:
        server = ThreadingHTTPServer((bind, int(port)), _MetricsHandler)
    except (OSError, ValueError) as exc:
        logger.error(
            "metrics not served", extra={"role": role, "port": port, "error": type(exc).__name__}
        )
        return None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    logger.info("metrics served", extra={"role": role, "port": server.server_address[1]})
    return server

"""Gunicorn's configuration for the web role: `gunicorn -c autoglue/gunicorn_conf.py ...`, as the
image's CMD, `manage.py runplatform` and the live tests run it. The worker class and timeouts are
on the command line; the number of workers is gunicorn's own `WEB_CONCURRENCY`. Each hook is one
call into the module that owns the concern (metrics: apps.core.metrics_process; traces:
autoglue.tracing; docs/observability.md)."""

import os
import sys
from pathlib import Path
from typing import Any

# Gunicorn runs this file by path: the project must be importable whatever the working folder.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apps.core import metrics_process  # noqa: E402 - after the path above
from autoglue.tracing import setup as tracing_setup  # noqa: E402

# Every address of the container, on AUTOGLUE_PORT (8080 by default; the image's health check
# reads the same variable), so a container on the host's network can be given a free port.
bind = [f"0.0.0.0:{os.environ.get('AUTOGLUE_PORT', '8080')}"]

# Tells the settings, read by each worker after the fork, that this process is the web role:
# its requests each run on a thread of their own, so its database connections go through a
# bounded pool by default (DATABASE_POOL_MAX_SIZE; docs/architecture.md#database-connections).
os.environ["AUTOGLUE_WEB_PROCESS"] = "true"


def on_starting(server: Any) -> None:
    metrics_process.gunicorn_on_starting(server)


def pre_fork(server: Any, worker: Any) -> None:
    metrics_process.gunicorn_pre_fork(server, worker)


def post_fork(server: Any, worker: Any) -> None:
    metrics_process.gunicorn_post_fork(server, worker)
    # After the fork and before the worker imports the application (docs/observability.md).
    tracing_setup("web")


def child_exit(server: Any, worker: Any) -> None:
    metrics_process.gunicorn_child_exit(server, worker)

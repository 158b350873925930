"""Gunicorn's configuration for the web role: `gunicorn -c autoglue/gunicorn_conf.py ...`.

The Dockerfile's CMD and `manage.py runplatform` use it; command-line flags still set the bind
address, workers and worker class. Each hook is one call into the module that owns the concern,
so adding another (tracing's `post_fork`) is one line.
"""

import sys
from pathlib import Path
from typing import Any

# Gunicorn runs this file by path: the project must be importable whatever the working folder.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apps.core import metrics_process  # noqa: E402 - after the path above


def on_starting(server: Any) -> None:
    metrics_process.gunicorn_on_starting(server)


def pre_fork(server: Any, worker: Any) -> None:
    metrics_process.gunicorn_pre_fork(server, worker)


def post_fork(server: Any, worker: Any) -> None:
    metrics_process.gunicorn_post_fork(server, worker)


def child_exit(server: Any, worker: Any) -> None:
    metrics_process.gunicorn_child_exit(server, worker)

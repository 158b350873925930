"""Gunicorn's configuration for the web role: `gunicorn -c autoglue/gunicorn_conf.py ...`, as the
image's CMD runs it. The worker class and timeouts are on the command line; the number of workers
is gunicorn's own `WEB_CONCURRENCY`."""

import os
from typing import Any

from autoglue.tracing import setup as tracing_setup

# Every address of the container, on AUTOGLUE_PORT (8080 by default; the image's health check
# reads the same variable), so a container on the host's network can be given a free port.
bind = [f"0.0.0.0:{os.environ.get('AUTOGLUE_PORT', '8080')}"]


def post_fork(server: Any, worker: Any) -> None:
    # After the fork and before the worker imports the application (docs/observability.md).
    tracing_setup("web")

"""Gunicorn settings of the web role (`gunicorn autoglue.asgi -c autoglue/gunicorn_conf.py`)."""

from __future__ import annotations

from typing import Any

from autoglue.tracing import setup as tracing_setup


def post_fork(server: Any, worker: Any) -> None:
    # After the fork and before the worker imports the application (docs/observability.md).
    tracing_setup("web")

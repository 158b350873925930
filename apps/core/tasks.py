"""Tasks every installation has."""

from celery import shared_task


@shared_task(name="core.ping", soft_time_limit=10, time_limit=15)
def ping() -> str:
    """Proves a worker is consuming: returns "pong"."""
    return "pong"

"""A real Celery worker consuming from the real Redis broker."""

import pytest
from celery.contrib.testing.worker import start_worker

from apps.core.tasks import ping
from autoglue.celery import app


@pytest.fixture
def celery_worker():
    """A worker thread on the real broker; eager mode off for the duration."""
    app.conf.task_always_eager = False
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            yield
    finally:
        app.conf.task_always_eager = True


@pytest.mark.django_db(transaction=True)
def test_a_worker_picks_up_a_task_from_the_broker_and_returns_its_result(celery_worker):
    result = ping.delay()
    assert result.get(timeout=15) == "pong"
    assert result.successful()

"""The Celery app's guard for kombu's Redis transport (autoglue/celery.py): a consumer that
loses Redis while it holds an unacknowledged message is cleaned up as Celery's consumer does it
(`collect()`, then `close()`), and the message acknowledged later, without an error that would
stop the worker. Against a redis-server of the test's own, killed for real."""

from __future__ import annotations

import contextlib
import logging
import socket

from kombu import Connection, Exchange, Queue
from kombu.common import ignore_errors

import autoglue.celery  # noqa: F401 - installs the guard, as every worker process does


def test_losing_redis_with_an_unacknowledged_message_does_not_break_the_consumers_cleanup(
    redis_server,
):
    connection = Connection(redis_server.url)
    work = Queue("work", Exchange("work", "direct"), "work")
    # A worker's channel also listens on a broadcast (fanout) queue: remote control.
    control = Queue("control", Exchange("control", "fanout"), auto_delete=True)
    with connection.Producer() as producer:
        producer.publish({"job": 1}, exchange=work.exchange, routing_key="work", declare=[work])
    received = []
    consumer = connection.Consumer(
        [work, control], callbacks=[lambda body, message: received.append(message)]
    )
    consumer.consume()
    connection.drain_events(timeout=5)
    # Waiting for more, as a worker with idle threads does.
    with contextlib.suppress(socket.timeout):
        connection.drain_events(timeout=0.2)
    assert len(received) == 1  # held, unacknowledged (a long SSH job)

    redis_server.kill()
    # What celery.worker.consumer does on a lost connection, in order.
    ignore_errors(connection, lambda: connection.collect(socket_timeout=1))
    ignore_errors(connection, connection.close)  # raised AttributeError ('hostname') unguarded
    # The job ends after the reconnect and is acknowledged as Celery does it: an error on the
    # way is logged, never raised (it raised AttributeError ('client') unguarded).
    received[0].ack_log_error(
        logging.getLogger(__name__), connection.connection_errors + connection.channel_errors
    )

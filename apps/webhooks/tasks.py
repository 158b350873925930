"""The Celery side of webhooks: thin tasks on the `webhooks` queue."""

from __future__ import annotations

from celery import shared_task

from apps.webhooks import services

_SOFT_LIMIT, _HARD_LIMIT = services.attempt_time_limits()


@shared_task(
    name=services.TASK_NAME,
    acks_late=True,
    ignore_result=True,
    # Just above the request's own deadline; the claim's lease is longer than the hard limit.
    # Only a prefork pool enforces them: in the webhooks worker's threads pool the request's
    # deadline (clients.post, the name lookup included) is the bound.
    soft_time_limit=_SOFT_LIMIT,
    time_limit=_HARD_LIMIT,
)
def deliver(delivery_id: str) -> str:
    """One attempt of one delivery. Acknowledged after it ends, so a worker killed mid-request
    leaves the message to be delivered again; the claim makes a duplicate do nothing."""
    return services.webhook_delivery_attempt(delivery_id=delivery_id)


@shared_task(name="webhooks.dispatch", soft_time_limit=60, time_limit=90, ignore_result=True)
def dispatch() -> dict[str, int]:
    """Publish due retries and deliveries whose worker died (every few seconds, from beat)."""
    return services.webhook_dispatch()

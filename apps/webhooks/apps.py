from typing import Any

from django.apps import AppConfig
from django.db.models.signals import pre_delete


class WebhooksConfig(AppConfig):
    """Signed webhooks: endpoints per organization, events written to an outbox in the same
    transaction as the change they describe, deliveries with retries and a delivery log
    (docs/webhooks.md)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "apps.webhooks"
    label = "webhooks"

    def ready(self) -> None:
        from apps.core.events import event_listener_register
        from apps.webhooks.events import webhook_listener

        event_listener_register(webhook_listener)
        pre_delete.connect(
            _organization_deleting, sender="orgs.Organization", dispatch_uid="webhooks-org-delete"
        )


def _organization_deleting(sender: Any, instance: Any, **kwargs: Any) -> None:
    from apps.webhooks.services import webhook_org_deleting

    webhook_org_deleting(organization_id=instance.pk)

"""Migration 0004 (platform endpoints) goes back as well as forward: going back removes the
platform's endpoints with their log, which the older schema cannot hold, and keeps every
organization's."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from apps.webhooks import services
from apps.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

# Migration 0005 builds its index CONCURRENTLY, which PostgreSQL refuses inside a transaction:
# the test runs outside one, as `migrate` does.
pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("webhooks", "0003_dispatch_on_maintenance")


def _endpoint_with_an_attempt(organization) -> WebhookEndpoint:
    endpoint, _ = services.webhook_endpoint_create(
        organization=organization, url="https://hooks.example.com/x"
    )
    delivery = services.webhook_test_send(endpoint=endpoint)
    WebhookAttempt.objects.create(
        organization=organization, delivery=delivery, number=1, started_at=delivery.created_at
    )
    return endpoint


def _organization_nullable(table: str) -> bool:
    with connection.cursor() as cursor:
        columns = connection.introspection.get_table_description(cursor, table)
    return next(c.null_ok for c in columns if c.name == "organization_id")


def test_going_back_before_platform_endpoints_drops_the_platform_s_and_keeps_the_org_s(org):
    platform = _endpoint_with_an_attempt(None)
    mine = _endpoint_with_an_attempt(org)
    executor = MigrationExecutor(connection)

    executor.migrate([BEFORE])

    assert not _organization_nullable(WebhookEndpoint._meta.db_table)
    assert not _organization_nullable(WebhookDelivery._meta.db_table)
    assert not _organization_nullable(WebhookAttempt._meta.db_table)
    assert list(WebhookEndpoint.objects.values_list("pk", flat=True)) == [mine.pk]
    assert set(WebhookDelivery.objects.values_list("endpoint_id", flat=True)) == {mine.pk}
    assert set(WebhookAttempt.objects.values_list("delivery__endpoint_id", flat=True)) == {mine.pk}
    assert not WebhookEndpoint.objects.filter(pk=platform.pk).exists()

    # Forward again to every migration (later ones too), as `migrate` would.
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert _organization_nullable(WebhookEndpoint._meta.db_table)

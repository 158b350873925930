"""Every API write is one transaction (apps.core.api.transactions): when the database fails
during it, the client is told to retry (503 with Retry-After), never given a 500."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection

from apps.clusters.models import Label
from apps.clusters.tests.factories import LabelFactory


@pytest.mark.django_db(transaction=True)
def test_a_write_the_database_cannot_finish_is_a_503_with_retry_after(api, org, caplog):
    label = LabelFactory(organization=org, value="before")
    db = connection.settings_dict
    holder = psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=True
    )
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '200ms'")
    try:
        # Another transaction holds the row, and this one may not wait: PostgreSQL gives up.
        with holder, holder.transaction():
            holder.execute("SELECT 1 FROM clusters_label WHERE id = %s FOR UPDATE", [label.pk])

            response = api.patch(
                f"/api/v1/labels/{label.pk}", {"value": "after"}, format="json", HTTP_IF_MATCH="*"
            )
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")

    assert response.status_code == 503
    assert response.json()["code"] == "database_unavailable"
    assert response["Retry-After"] == "1"
    assert Label.objects.get(pk=label.pk).value == "before"
    assert not [r for r in caplog.records if getattr(r, "event", "") == "http_panic"]

"""A dependency that is down (Redis, the broker, PostgreSQL) is a 503 with `Retry-After`, never a
500: for the API (the contract's error body) and for pages alike, logged once, without secrets.
The views reach real clients pointed at a loopback port nothing listens on."""

import logging

import pytest
from django.test import Client
from prometheus_client import REGISTRY

from apps.core.tests.urls import DEAD_DB_PASSWORD

pytestmark = [pytest.mark.django_db, pytest.mark.urls("apps.core.tests.urls")]


@pytest.fixture
def client():
    # Answer as a server would, instead of re-raising the view's exception into the test.
    return Client(raise_request_exception=False)


@pytest.mark.parametrize("dependency", ["redis", "database"])
def test_an_api_request_whose_dependency_is_down_is_503_with_retry_after(
    client, dependency, caplog
):
    with caplog.at_level(logging.INFO):
        response = client.get(f"/api/v1/test/down/{dependency}")
    assert response.status_code == 503
    assert response.json() == {
        "code": "service_unavailable",
        "message": "a service the request needs is unavailable; retry shortly",
    }
    assert int(response["Retry-After"]) > 0
    assert DEAD_DB_PASSWORD not in caplog.text
    outages = [r for r in caplog.records if getattr(r, "event", "") == "dependency_unavailable"]
    assert len(outages) == 1
    assert outages[0].dependency == dependency


@pytest.mark.parametrize("dependency", ["redis", "database"])
def test_a_page_whose_dependency_is_down_is_503_with_retry_after(client, dependency, caplog):
    with caplog.at_level(logging.INFO):
        response = client.get(f"/test-page/down/{dependency}")
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
    assert b"Traceback" not in response.content
    assert DEAD_DB_PASSWORD not in caplog.text
    outages = [r for r in caplog.records if getattr(r, "event", "") == "dependency_unavailable"]
    assert len(outages) == 1
    # Django's own "Internal Server Error" line with the traceback is not written as well.
    assert not [r for r in caplog.records if r.name == "django.request" and r.exc_info]


def test_an_unexpected_error_is_still_a_500(client):
    response = client.get("/api/v1/test/boom")
    assert response.status_code == 500
    assert "Retry-After" not in response


def _pool_timeouts() -> float:
    return REGISTRY.get_sample_value("autoglue_db_pool_timeouts_total") or 0.0


@pytest.mark.parametrize(
    ("dependency", "reason"), [("pool", "pool_exhausted"), ("database", "unavailable")]
)
def test_a_full_pool_is_logged_and_counted_apart_from_a_database_outage(
    client, caplog, dependency, reason
):
    before = _pool_timeouts()
    with caplog.at_level(logging.INFO):
        response = client.get(f"/api/v1/test/down/{dependency}")
    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"
    outages = [r for r in caplog.records if getattr(r, "event", "") == "dependency_unavailable"]
    assert [(r.dependency, r.reason) for r in outages] == [("database", reason)]
    assert _pool_timeouts() - before == (1 if reason == "pool_exhausted" else 0)

"""Probes and scrapes reach the web pod over plain HTTP from inside the cluster, where the
production default SECURE_SSL_REDIRECT=true would send everything else to https."""

from __future__ import annotations

import pytest


@pytest.fixture
def redirecting(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = None


@pytest.mark.parametrize("path", ["/api/v1/healthz", "/api/v1/readyz", "/metrics"])
def test_probes_and_metrics_scrapes_over_plain_http_are_not_redirected(redirecting, client, path):
    response = client.get(path)
    assert response.status_code != 301, path


def test_any_other_plain_http_request_is_redirected_to_https(redirecting, client):
    response = client.get("/api/v1/servers")
    assert response.status_code == 301
    assert response["Location"].startswith("https://")

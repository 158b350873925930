"""Unknown paths and wrong methods under /api/, through the project's real URL map, with CSRF
checks enforced as a browser-less client meets them in production."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

METHODS = ("get", "post", "put", "patch", "delete")


def _assert_json_error(response, status: int, code: str) -> None:
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["code"] == code


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("path", ["/api/v1/no-such-thing", "/api/v2/servers", "/api/x/"])
def test_every_method_on_an_unknown_api_path_is_a_json_404(db, method, path):
    client = APIClient(enforce_csrf_checks=True)
    response = getattr(client, method)(path, {"a": 1}, format="json")
    _assert_json_error(response, 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", "/api/v1/servers"),
        ("delete", "/api/v1/servers"),
        ("patch", "/api/v1/clusters"),
        ("put", "/api/v1/healthz"),
        ("delete", "/api/v1/version"),
        ("post", "/.well-known/jwks.json"),
    ],
)
def test_a_wrong_method_on_a_known_path_is_a_json_405(client_for, member, org, method, path):
    client = client_for(member, org)
    client.enforce_csrf_checks = True
    response = getattr(client, method)(path, {"a": 1}, format="json")
    _assert_json_error(response, 405, "method_not_allowed")

"""Which credential a request carries, with real headers as the original's clients send them.

The generated TypeScript SDK sends every security header it knows on org-scoped calls, empty
when the caller did not configure it; proxies add their own `Authorization: Basic`.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.accounts import jwt as access_tokens
from apps.accounts import services
from apps.infrastructure.tests.factories import ServerFactory

EMPTY_ORG_PAIR = {"HTTP_X_ORG_KEY": "", "HTTP_X_ORG_SECRET": ""}


def _client(**headers: str) -> APIClient:
    client = APIClient()
    client.credentials(**headers)
    return client


def test_a_bearer_token_beside_empty_org_key_headers_reaches_org_routes(signing_key, member, org):
    ServerFactory(organization=org)
    token = access_tokens.issue_access_token(user_id=member.pk)
    client = _client(
        HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_X_ORG_ID=str(org.pk), **EMPTY_ORG_PAIR
    )
    response = client.get("/api/v1/servers")
    assert response.status_code == 200 and len(response.json()) == 1
    assert (
        client.post("/api/v1/labels", {"key": "a", "value": "b"}, format="json").status_code == 201
    )


def test_a_user_key_beside_empty_org_key_and_authorization_headers_authenticates(member, org):
    created = services.api_key_create_for_user(user=member)
    client = _client(
        HTTP_X_API_KEY=created.plain,
        HTTP_AUTHORIZATION="",
        HTTP_X_ORG_ID=str(org.pk),
        **EMPTY_ORG_PAIR,
    )
    assert client.get("/api/v1/servers").status_code == 200


def test_an_unrelated_basic_authorization_does_not_spoil_a_valid_user_key(member, org):
    created = services.api_key_create_for_user(user=member)
    client = _client(
        HTTP_X_API_KEY=created.plain,
        HTTP_AUTHORIZATION="Basic dXNlcjpwYXNz",
        HTTP_X_ORG_ID=str(org.pk),
    )
    assert client.get("/api/v1/me").status_code == 200
    assert client.get("/api/v1/servers").status_code == 200


def test_an_org_key_pair_wins_over_an_empty_bearer_and_api_key(real_org_key_client, org):
    pair = real_org_key_client(org)._credentials
    client = _client(HTTP_AUTHORIZATION="", HTTP_X_API_KEY="", **pair)
    assert client.get("/api/v1/servers").status_code == 200


def test_the_org_key_pair_is_checked_before_a_bearer_token(
    real_org_key_client, signing_key, member, org
):
    token = access_tokens.issue_access_token(user_id=member.pk)
    pair = real_org_key_client(org)._credentials
    client = _client(
        HTTP_AUTHORIZATION=f"Bearer {token}",
        HTTP_X_ORG_KEY=pair["HTTP_X_ORG_KEY"],
        HTTP_X_ORG_SECRET="wrong",
    )
    response = client.get("/api/v1/servers")
    assert response.status_code == 401 and response.json()["message"] == "invalid org credentials"


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_AUTHORIZATION": "Bearer "},
        {"HTTP_AUTHORIZATION": "Bearer not-a-jwt"},
        {"HTTP_X_ORG_KEY": "org_0123456789abcdef", "HTTP_X_ORG_SECRET": ""},
    ],
)
def test_a_present_but_wrong_credential_is_401_even_beside_a_valid_user_key(member, headers):
    created = services.api_key_create_for_user(user=member)
    client = _client(HTTP_X_API_KEY=created.plain, **headers)
    assert client.get("/api/v1/me").status_code == 401


def test_only_empty_credential_headers_leave_the_request_anonymous(db):
    client = _client(HTTP_AUTHORIZATION="", HTTP_X_API_KEY="", **EMPTY_ORG_PAIR)
    response = client.get("/api/v1/servers")
    assert response.status_code == 401 and response.json()["code"] == "unauthorized"

"""Rate limits beyond per-IP: per user, per key, strict sign-in/token paths, key failures; and
the RateLimit-* headers on every API response."""

from __future__ import annotations

import pytest

from apps.accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


def test_every_api_response_carries_the_ratelimit_headers(api, anon):
    for response in (
        api.get("/api/v1/labels"),
        anon.get("/api/v1/version"),
        anon.get("/api/v1/labels"),
        anon.get("/api/v1/no-such-route"),
        anon.get("/api/v1/labels", HTTP_X_API_KEY="u_nope_nope"),
    ):
        for header in HEADERS:
            assert header in response, (response.status_code, header)


def test_remaining_counts_down_within_a_window(anon, settings):
    settings.RATE_LIMIT = "10/m"
    first = anon.get("/api/v1/version")
    second = anon.get("/api/v1/version")

    assert first["RateLimit-Limit"] == "10"
    assert int(first["RateLimit-Remaining"]) - int(second["RateLimit-Remaining"]) == 1
    assert 1 <= int(second["RateLimit-Reset"]) <= 60


def test_a_user_over_their_limit_is_429_while_another_user_carries_on(
    api, client_for, org, settings
):
    settings.RATE_LIMIT_USER = "3/m"
    statuses = [api.get("/api/v1/labels").status_code for _ in range(4)]
    other = client_for(UserFactory(), None)

    assert statuses == [200, 200, 200, 429]
    limited = api.get("/api/v1/labels")
    assert limited.json()["code"] == "rate_limited"
    assert limited["RateLimit-Remaining"] == "0" and limited["RateLimit-Limit"] == "3"
    assert 1 <= int(limited["Retry-After"]) <= 60
    assert other.get("/api/v1/me").status_code == 200


def test_each_org_key_has_its_own_budget(org, org_key_client, settings):
    settings.RATE_LIMIT_KEY = "2/m"
    first, second = org_key_client(org), org_key_client(org)

    assert [first.get("/api/v1/labels").status_code for _ in range(3)] == [200, 200, 429]
    assert second.get("/api/v1/labels").status_code == 200


def test_sign_in_and_token_routes_have_a_strict_per_ip_limit(anon, settings):
    settings.RATE_LIMIT_AUTH = "2/m"
    statuses = [
        anon.post("/api/v1/auth/refresh", {"refresh_token": "x.y"}, format="json").status_code
        for _ in range(3)
    ]

    assert statuses == [401, 401, 429]
    assert anon.get("/api/v1/version").status_code == 200


def test_after_too_many_401s_requests_with_credentials_are_refused_early(anon, settings):
    settings.RATE_LIMIT_AUTH_FAILURES = "3/m"
    bad = [
        anon.get("/api/v1/labels", HTTP_X_API_KEY=f"u_nope{i}_secret").status_code for i in range(3)
    ]

    blocked = anon.get("/api/v1/labels", HTTP_X_API_KEY="u_other_secret")

    assert bad == [401, 401, 401]
    assert blocked.status_code == 429 and blocked.json()["code"] == "rate_limited"
    # Requests without credentials (health, public routes) are not affected.
    assert anon.get("/api/v1/version").status_code == 200

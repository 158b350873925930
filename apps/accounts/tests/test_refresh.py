"""Refresh tokens: rotation, single use, reuse detection, logout, and the concurrent race."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from apps.accounts import services
from apps.accounts.models import RefreshToken


def _refresh(token: str):
    return APIClient().post("/api/v1/auth/refresh", {"refresh_token": token}, format="json")


def test_refresh_returns_a_new_token_pair_and_a_short_cookie(member, signing_key):
    pair = services.token_pair_issue(user=member)
    response = _refresh(pair.refresh_token)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["refresh_token"] != pair.refresh_token
    cookie = response.cookies["ag_jwt"]
    assert int(cookie["max-age"]) <= 3600 and cookie["httponly"]
    me = APIClient().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    assert me.status_code == 200


def test_refresh_tokens_are_stored_as_digests_only(member, signing_key):
    pair = services.token_pair_issue(user=member)
    secret = pair.refresh_token.split(".", 1)[1]
    row = RefreshToken.objects.get()
    assert secret not in row.digest


def test_a_used_refresh_token_revokes_the_whole_family(member, signing_key):
    pair = services.token_pair_issue(user=member)
    rotated = _refresh(pair.refresh_token).json()["refresh_token"]
    # An attacker (or the user) presents the old token again: 401, and the family is dead...
    reuse = _refresh(pair.refresh_token)
    assert reuse.status_code == 401 and reuse.json()["code"] == "invalid_refresh"
    # ...so the legitimately rotated token stops working too.
    assert _refresh(rotated).status_code == 401


def test_logout_revokes_the_family_and_is_204_even_for_garbage(member, signing_key):
    pair = services.token_pair_issue(user=member)
    other_login = services.token_pair_issue(user=member)
    response = APIClient().post(
        "/api/v1/auth/logout", {"refresh_token": pair.refresh_token}, format="json"
    )
    assert response.status_code == 204
    assert _refresh(pair.refresh_token).status_code == 401
    # Logging out ends one login chain, not every session of the user.
    assert _refresh(other_login.refresh_token).status_code == 200
    garbage = APIClient().post("/api/v1/auth/logout", {"refresh_token": "x.y"}, format="json")
    assert garbage.status_code == 204


@pytest.mark.parametrize("token", ["", "nope", "00000000-0000-0000-0000-000000000000.abc"])
def test_malformed_or_unknown_refresh_tokens_are_refused(db, token):
    response = _refresh(token)
    assert response.status_code in (400, 401)


def test_a_forged_secret_for_a_real_token_id_is_refused(member, signing_key):
    pair = services.token_pair_issue(user=member)
    token_id = pair.refresh_token.split(".", 1)[0]
    assert _refresh(f"{token_id}.forged").status_code == 401
    # The forgery did not use up the real token.
    assert _refresh(pair.refresh_token).status_code == 200


def test_a_disabled_user_cannot_refresh(member, signing_key):
    pair = services.token_pair_issue(user=member)
    member.is_disabled = True
    member.save()
    response = _refresh(pair.refresh_token)
    assert response.status_code == 401 and response.json()["code"] == "user_disabled"


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_refreshes_of_one_token_yield_exactly_one_success():
    from apps.accounts import jwt as access_tokens
    from apps.accounts.tests.factories import UserFactory

    access_tokens.reset_keyring()
    services.signing_key_generate(bits=2048)
    user = UserFactory()
    pair = services.token_pair_issue(user=user)
    barrier = threading.Barrier(20)
    results: list[int] = []
    lock = threading.Lock()

    def worker():
        try:
            barrier.wait()
            status = _refresh(pair.refresh_token).status_code
            with lock:
                results.append(status)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    access_tokens.reset_keyring()
    assert len(results) == 20
    assert results.count(200) == 1
    assert results.count(401) == 19


def test_a_refresh_that_fails_to_issue_does_not_burn_the_token(member, signing_key, monkeypatch):
    from apps.accounts import jwt as access_tokens
    from apps.accounts.models import SigningKey

    pair = services.token_pair_issue(user=member)
    SigningKey.objects.update(is_active=False)
    access_tokens.reset_keyring()
    # Issuing fails: no active key, and creating one fails too.
    monkeypatch.setattr(access_tokens, "ensure_signing_key", lambda: False)
    with pytest.raises(access_tokens.NoSigningKey):
        services.token_pair_refresh(refresh_token=pair.refresh_token)
    monkeypatch.undo()
    assert RefreshToken.objects.get(pk=pair.refresh_token.split(".")[0]).used_at is None
    services.signing_key_generate(bits=2048)
    access_tokens.reset_keyring()
    # The retry is the first use, not a reuse: it succeeds and the family lives on.
    response = _refresh(pair.refresh_token)
    assert response.status_code == 200
    assert _refresh(response.json()["refresh_token"]).status_code == 200

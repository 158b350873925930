"""A fresh installation has no JWT signing key: the first one is created race-safely, at start
or on the first sign-in, and issuing a token never answers 500."""

from __future__ import annotations

import io
import threading

import pytest
from django.core.management import call_command
from django.db import connection
from rest_framework.test import APIClient

from apps.accounts import jwt as access_tokens
from apps.accounts.models import SigningKey
from apps.accounts.tests.test_sso import _approve, _put_user, _start


@pytest.fixture(autouse=True)
def _no_cached_keyring():
    access_tokens.reset_keyring()
    yield
    access_tokens.reset_keyring()


@pytest.mark.django_db(transaction=True)
def test_processes_starting_together_create_exactly_one_signing_key():
    start = threading.Barrier(4)
    created: list[bool] = []
    errors: list[BaseException] = []

    def boot() -> None:
        try:
            start.wait(timeout=10)
            created.append(access_tokens.ensure_signing_key())
        except BaseException as exc:  # reported below, with the thread's traceback lost
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=boot) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(created) == [False, False, False, True]
    assert SigningKey.objects.filter(is_active=True).count() == 1


def test_keys_ensure_creates_a_key_once(db):
    out = io.StringIO()
    call_command("keys", "ensure", stdout=out)
    call_command("keys", "ensure", stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("generated RS256 key kid=")
    assert lines[1].startswith("found active RS256 key kid=")
    assert SigningKey.objects.count() == 1


def test_the_first_sign_in_on_a_fresh_database_gets_a_token(db, settings, idp_url):
    settings.GOOGLE_OIDC_ISSUER = idp_url
    settings.GOOGLE_CLIENT_ID = "autoglue-test-client"
    settings.GOOGLE_CLIENT_SECRET = "test-client-secret"
    settings.GOOGLE_WORKSPACE_DOMAINS = ["acme.example"]
    settings.OAUTH_REDIRECT_BASE = "http://testserver"
    assert not SigningKey.objects.exists()
    _put_user(
        idp_url, "first-sub", email="first@acme.example", email_verified=True, hd="acme.example"
    )

    auth_url = _start(mode="").json()["auth_url"]
    response = APIClient().get("/api/v1/auth/google/callback", _approve(auth_url, "first-sub"))

    assert response.status_code == 200, response.content
    token = response.json()["access_token"]
    me = APIClient().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert me.status_code == 200 and me.json()["primary_email"] == "first@acme.example"
    assert SigningKey.objects.filter(is_active=True).count() == 1


def test_refreshing_after_every_key_expired_issues_a_token_under_a_new_key(member, signing_key):
    from apps.accounts import services

    pair = services.token_pair_issue(user=member)
    services.signing_key_retire(key=signing_key, at=signing_key.created_at)

    response = APIClient().post(
        "/api/v1/auth/refresh", {"refresh_token": pair.refresh_token}, format="json"
    )

    assert response.status_code == 200, response.content
    assert SigningKey.objects.count() == 2

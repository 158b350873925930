"""Console sign-in (server-rendered, django-allauth) against the real OIDC provider process."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.test import Client

from apps.accounts.models import User
from apps.accounts.tests.support import console_google
from apps.accounts.tests.test_sso import _put_user


@pytest.fixture
def console(settings, idp_url, db):
    settings.GOOGLE_WORKSPACE_DOMAINS = ["acme.example"]
    settings.SOCIALACCOUNT_PROVIDERS = console_google(idp_url)
    return idp_url


def _sign_in(idp, sub, **claims):
    _put_user(
        idp,
        sub,
        **{
            "email": f"{sub}@acme.example",
            "email_verified": True,
            "name": sub.title(),
            "hd": "acme.example",
            **claims,
        },
    )
    client = Client()
    page = client.get("/accounts/login/")
    assert page.status_code == 200 and b"Sign in with Google" in page.content
    start = client.post("/accounts/oidc/google/login/")
    assert start.status_code == 302
    params = parse_qs(urlsplit(start["Location"]).query)
    assert params["code_challenge_method"] == ["S256"] and len(params["code_challenge"][0]) >= 43
    assert len(params["nonce"][0]) >= 32
    approve = requests.post(
        start["Location"],
        data={"sub": sub, "action": "authorize"},
        allow_redirects=False,
        timeout=5,
    )
    assert approve.status_code == 302
    callback = urlsplit(approve.headers["Location"])
    return client, client.get(f"{callback.path}?{callback.query}"), callback


def test_a_workspace_admin_signs_in_to_the_console(console):
    User.objects.create_user("olga@acme.example", is_admin=True)
    client, response, _ = _sign_in(console, "olga")
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert User.objects.filter(primary_email="olga@acme.example").count() == 1


def test_an_unverified_email_is_refused_at_the_console(console):
    _, response, _ = _sign_in(console, "eve", email_verified=False)
    assert response.status_code == 403
    assert not User.objects.filter(primary_email="eve@acme.example").exists()


def test_a_foreign_domain_is_refused_at_the_console(console):
    _, response, _ = _sign_in(console, "mallory", email="mallory@evil.example", hd="evil.example")
    assert response.status_code == 403


def test_a_tampered_state_is_refused_at_the_console(console):
    _put_user(console, "sam", email="sam@acme.example", email_verified=True, hd="acme.example")
    client = Client()
    start = client.post("/accounts/oidc/google/login/")
    approve = requests.post(
        start["Location"],
        data={"sub": "sam", "action": "authorize"},
        allow_redirects=False,
        timeout=5,
    )
    callback = urlsplit(approve.headers["Location"])
    query = {k: v[0] for k, v in parse_qs(callback.query).items()}
    query["state"] = "forged"
    client.get(callback.path, query)
    assert not User.objects.filter(primary_email="sam@acme.example").exists()
    assert "_auth_user_id" not in client.session


def test_an_id_token_minted_for_another_nonce_is_refused_at_the_console(console):
    _put_user(console, "nina", email="nina@acme.example", email_verified=True, hd="acme.example")
    client = Client()
    start = client.post("/accounts/oidc/google/login/")
    # The provider is asked for a token bound to a nonce other than the one this sign-in sent.
    location = urlsplit(start["Location"])
    query = {k: v[0] for k, v in parse_qs(location.query).items()}
    query["nonce"] = "replayed-nonce-from-another-sign-in"
    approve = requests.post(
        f"{location.scheme}://{location.netloc}{location.path}",
        params=query,
        data={"sub": "nina", "action": "authorize"},
        allow_redirects=False,
        timeout=5,
    )
    assert approve.status_code == 302
    callback = urlsplit(approve.headers["Location"])
    response = client.get(f"{callback.path}?{callback.query}")
    assert response.status_code == 403
    assert not User.objects.filter(primary_email="nina@acme.example").exists()
    assert "_auth_user_id" not in client.session


def test_a_consumer_account_cannot_take_over_an_existing_user_at_the_console(console, settings):
    settings.GOOGLE_WORKSPACE_DOMAINS = []
    User.objects.create_user("victor@acme.example", is_admin=True)
    client, response, _ = _sign_in(console, "victor-gmail", email="victor@acme.example", hd=None)
    assert response.status_code == 403
    assert b"already exists" in response.content
    assert "_auth_user_id" not in client.session
    assert User.objects.filter(primary_email="victor@acme.example").count() == 1

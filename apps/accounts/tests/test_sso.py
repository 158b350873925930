"""Google Workspace sign-in, end to end against a real OpenID Connect provider process on
loopback (oidc-provider-mock, wrapped to enforce PKCE: see oidc_idp.py)."""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import OAuthIdentity, User
from apps.orgs.models import Membership
from apps.orgs.tests.factories import OrganizationFactory

SPA_ORIGIN = "http://localhost:5173"


@pytest.fixture
def google(settings, idp_url, signing_key):
    settings.GOOGLE_OIDC_ISSUER = idp_url
    settings.GOOGLE_CLIENT_ID = "autoglue-test-client"
    settings.GOOGLE_CLIENT_SECRET = "CANARY-google-client-secret"
    settings.GOOGLE_WORKSPACE_DOMAINS = ["acme.example"]
    settings.OAUTH_REDIRECT_BASE = "http://testserver"
    settings.SSO_ALLOWED_ORIGINS = [SPA_ORIGIN]
    return idp_url


def _put_user(idp_url: str, sub: str, **claims) -> None:
    response = requests.put(f"{idp_url}/users/{sub}", json=claims, timeout=5)
    assert response.status_code == 204


def _start(mode: str = "spa", origin: str = SPA_ORIGIN, browser: APIClient | None = None):
    query = f"?mode={mode}&origin={origin}" if mode else ""
    return (browser or APIClient()).post(f"/api/v1/auth/google/start{query}")


def _approve(auth_url: str, sub: str) -> dict:
    """The person clicks "approve" at the provider; returns the callback's query."""
    response = requests.post(
        auth_url, data={"sub": sub, "action": "authorize"}, allow_redirects=False, timeout=5
    )
    assert response.status_code == 302, response.text
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


def _callback(query: dict, browser: APIClient | None = None):
    return (browser or APIClient()).get("/api/v1/auth/google/callback", query)


def _posted_tokens(response) -> tuple[dict, str]:
    html = response.content.decode()
    payload = re.search(r'atob\("([^"]+)"\)', html).group(1)
    origin = re.search(
        r"postMessage\(\{type: \"autoglue:auth\", payload: payload\}, (\"[^\"]+\")", html
    ).group(1)
    return json.loads(base64.b64decode(payload)), json.loads(origin)


def _login(google, sub="alice-sub", **claims):
    claims = {
        "email": "alice@acme.example",
        "email_verified": True,
        "name": "Alice",
        "hd": "acme.example",
        **claims,
    }
    _put_user(google, sub, **claims)
    # One browser starts and finishes the login (it carries the binding cookie).
    browser = APIClient()
    auth_url = _start(browser=browser).json()["auth_url"]
    return _callback(_approve(auth_url, sub), browser=browser)


def test_start_returns_an_auth_url_with_state_nonce_and_pkce(google):
    response = _start()
    assert response.status_code == 200
    params = parse_qs(urlsplit(response.json()["auth_url"]).query)
    assert params["code_challenge_method"] == ["S256"]
    assert len(params["code_challenge"][0]) >= 43
    assert params["state"][0] and params["nonce"][0]
    assert params["redirect_uri"] == ["http://testserver/api/v1/auth/google/callback"]


def test_a_spa_login_posts_tokens_to_the_allow_listed_origin_only(google):
    response = _login(google)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/html")
    assert response["Cache-Control"] == "no-store"
    tokens, origin = _posted_tokens(response)
    assert origin == SPA_ORIGIN
    assert set(tokens) == {"access_token", "refresh_token", "token_type", "expires_in"}
    me = APIClient().get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert me.status_code == 200 and me.json()["primary_email"] == "alice@acme.example"
    assert OAuthIdentity.objects.filter(provider="google", subject="alice-sub").count() == 1
    assert int(response.cookies["ag_jwt"]["max-age"]) <= 3600


def test_a_non_spa_login_returns_the_token_pair_as_json(google):
    _put_user(google, "json-sub", email="jo@acme.example", email_verified=True, hd="acme.example")
    auth_url = _start(mode="").json()["auth_url"]
    response = _callback(_approve(auth_url, "json-sub"))
    assert response.status_code == 200
    assert response.json()["token_type"] == "Bearer"


def test_a_second_login_reuses_the_same_user(google):
    _login(google)
    _login(google)
    assert User.objects.filter(primary_email="alice@acme.example").count() == 1


def test_an_origin_outside_the_allow_list_is_refused(google):
    response = _start(origin="https://evil.example")
    assert response.status_code == 400 and response.json()["code"] == "invalid_origin"


def test_an_unknown_provider_is_400(google):
    response = APIClient().post("/api/v1/auth/github/start")
    assert response.status_code == 400 and response.json()["code"] == "unsupported_provider"


def test_a_forged_state_is_refused(google):
    _put_user(google, "s1", email="s1@acme.example", email_verified=True, hd="acme.example")
    query = _approve(_start().json()["auth_url"], "s1")
    query["state"] = "forged"
    response = _callback(query)
    assert response.status_code == 401 and response.json()["code"] == "invalid_state"
    assert not User.objects.filter(primary_email="s1@acme.example").exists()


def test_a_state_cannot_be_replayed(google):
    _put_user(google, "s2", email="s2@acme.example", email_verified=True, hd="acme.example")
    query = _approve(_start().json()["auth_url"], "s2")
    assert _callback(query).status_code == 200
    assert _callback(query).status_code == 401


def test_an_unverified_email_is_refused(google):
    response = _login(google, sub="unverified", email="eve@acme.example", email_verified=False)
    assert response.status_code == 403 and response.json()["code"] == "email_not_verified"
    assert not User.objects.filter(primary_email="eve@acme.example").exists()


def test_a_foreign_workspace_domain_is_refused(google):
    response = _login(google, sub="foreign", email="mallory@evil.example", hd="evil.example")
    assert response.status_code == 403 and response.json()["code"] == "domain_not_allowed"


def test_a_consumer_account_without_hd_is_refused(google):
    response = _login(google, sub="gmail", email="someone@gmail.com", hd=None)
    assert response.status_code == 403


def test_the_provider_refuses_a_wrong_pkce_verifier(google):
    """The provider process really enforces PKCE: our flow passes only because it sends the
    right verifier."""
    _put_user(google, "pkce", email="p@acme.example", email_verified=True, hd="acme.example")
    query = _approve(_start().json()["auth_url"], "pkce")
    response = requests.post(
        f"{google}/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": "http://testserver/api/v1/auth/google/callback",
            "code_verifier": "wrong-verifier-" + "x" * 40,
        },
        auth=("autoglue-test-client", "x"),
        timeout=5,
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_sign_in_auto_joins_only_an_org_with_that_verified_domain(google):
    verified = OrganizationFactory(
        name="Acme", domain="acme.example", domain_verified_at=timezone.now()
    )
    unverified = OrganizationFactory(name="Squatter", domain="acme.example")
    assert _login(google).status_code == 200
    user = User.objects.get(primary_email="alice@acme.example")
    assert Membership.objects.get(user=user, organization=verified).role == "member"
    assert not Membership.objects.filter(user=user, organization=unverified).exists()


def test_a_disabled_user_cannot_sign_in(google):
    _login(google)
    User.objects.filter(primary_email="alice@acme.example").update(is_disabled=True)
    response = _login(google)
    assert response.status_code == 401 and response.json()["code"] == "user_disabled"


def test_the_client_secret_never_reaches_a_response(google):
    for response in (_start(), _login(google)):
        assert b"CANARY" not in response.content


# --- account linking (takeover by e-mail) ------------------------------------------------------


@pytest.fixture
def any_google_account(google, settings):
    """No Workspace restriction: consumer accounts (no `hd`) may sign in too."""
    settings.GOOGLE_WORKSPACE_DOMAINS = []
    return google


def test_a_consumer_account_cannot_take_over_an_existing_users_email(any_google_account):
    victim = User.objects.create_user("alice@acme.example", display_name="Alice")
    response = _login(any_google_account, sub="attacker-gmail", hd=None)
    assert response.status_code == 403 and response.json()["code"] == "account_exists"
    assert "ag_jwt" not in response.cookies
    assert not OAuthIdentity.objects.filter(subject="attacker-gmail").exists()
    assert list(User.objects.filter(primary_email__iexact="alice@acme.example")) == [victim]


def test_another_workspaces_hd_cannot_take_over_an_existing_users_email(any_google_account):
    User.objects.create_user("alice@acme.example", display_name="Alice")
    response = _login(any_google_account, sub="other-ws", hd="evil.example")
    assert response.status_code == 403 and response.json()["code"] == "account_exists"


def test_a_workspace_managed_address_links_to_the_existing_user(any_google_account):
    existing = User.objects.create_user("alice@acme.example", display_name="Alice")
    response = _login(any_google_account, sub="alice-ws", hd="acme.example")
    assert response.status_code == 200
    assert OAuthIdentity.objects.get(subject="alice-ws").user == existing


def test_a_linked_consumer_account_keeps_signing_in(any_google_account):
    first = _login(any_google_account, sub="carol-gmail", email="carol@gmail.com", hd=None)
    assert first.status_code == 200
    again = _login(any_google_account, sub="carol-gmail", email="carol@gmail.com", hd=None)
    assert again.status_code == 200
    assert User.objects.filter(primary_email="carol@gmail.com").count() == 1


def test_only_a_workspace_managed_address_auto_joins_the_verified_domain(any_google_account):
    acme = OrganizationFactory(
        name="Acme", domain="acme.example", domain_verified_at=timezone.now()
    )
    consumer = _login(any_google_account, sub="dave-gmail", email="dave@acme.example", hd=None)
    assert consumer.status_code == 200
    dave = User.objects.get(primary_email="dave@acme.example")
    assert not Membership.objects.filter(user=dave, organization=acme).exists()
    managed = _login(any_google_account, sub="erin-ws", email="erin@acme.example")
    assert managed.status_code == 200
    erin = User.objects.get(primary_email="erin@acme.example")
    assert Membership.objects.get(user=erin, organization=acme).role == "member"


# --- login CSRF: the cookie only for the browser that started the login ------------------------


def test_start_sets_a_short_lived_http_only_binding_cookie(google, settings):
    response = _start()
    cookie = response.cookies["ag_sso_state"]
    assert cookie.value and cookie["httponly"] and cookie["samesite"] == "Lax"
    assert cookie["path"] == "/api/v1/auth/"
    assert int(cookie["max-age"]) == settings.SSO_STATE_SECONDS
    state = parse_qs(urlsplit(response.json()["auth_url"]).query)["state"][0]
    assert state not in cookie.value


def test_a_callback_in_the_starting_browser_sets_the_cookie_and_drops_the_binding(google):
    response = _login(google)
    assert response.status_code == 200
    assert response.cookies["ag_jwt"].value.startswith("Bearer ")
    assert response.cookies["ag_sso_state"].value == ""
    assert int(response.cookies["ag_sso_state"]["max-age"]) == 0


@pytest.mark.parametrize("mode", ["spa", ""])
def test_a_callback_in_another_browser_sets_no_cookie(google, mode):
    """An attacker starts a login, approves it with their own account, and sends the callback
    URL to a victim: the victim's browser must not end up signed in as the attacker."""
    _put_user(
        google, "mallory", email="mallory@acme.example", email_verified=True, hd="acme.example"
    )
    auth_url = _start(mode=mode).json()["auth_url"]
    victim = APIClient()
    _start(mode=mode, browser=victim)  # the victim's own, unrelated login attempt
    response = _callback(_approve(auth_url, "mallory"), browser=victim)
    assert response.status_code == 200
    assert "ag_jwt" not in response.cookies
    if mode == "spa":
        tokens, origin = _posted_tokens(response)
        assert origin == SPA_ORIGIN and tokens["access_token"]
    else:
        assert response.json()["access_token"]


def test_the_spa_callback_page_keeps_its_opener(google):
    response = _login(google)
    assert response["Cross-Origin-Opener-Policy"] == "unsafe-none"


def test_the_json_callback_keeps_the_default_opener_policy(google):
    _put_user(google, "json2", email="jo2@acme.example", email_verified=True, hd="acme.example")
    response = _callback(_approve(_start(mode="").json()["auth_url"], "json2"))
    assert response.status_code == 200
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


# --- a broken provider -------------------------------------------------------------------------


@pytest.fixture
def html_token_endpoint():
    """A token endpoint answering 200 with an HTML page (a captive portal or proxy error)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (the stdlib's name)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b"<html>Service temporarily unavailable</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            """Keep the stdlib server's per-request lines out of the test output."""

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/token"
    server.shutdown()
    server.server_close()


def test_a_non_json_token_response_is_401_exchange_failed(google, html_token_endpoint):
    from apps.accounts import sso
    from apps.core.api.errors import APIError

    with pytest.raises(APIError) as caught:
        sso._exchange({"token_endpoint": html_token_endpoint}, "google", "code", "verifier")
    assert caught.value.status_code == 401 and caught.value.error_code == "exchange_failed"

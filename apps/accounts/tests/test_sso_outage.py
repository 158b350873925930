"""Google sign-in while the identity provider's discovery and key endpoints cannot be reached.

A small relay on loopback serves the real OIDC provider's discovery document (with its
`jwks_uri` pointing back at the relay) and keys; stopping the relay closes its port, as an
outage of Google's discovery endpoint does, while the provider's authorize and token endpoints
keep answering."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.test import Client
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.accounts.tests.support import console_google
from apps.accounts.tests.test_sso import _put_user
from tests.live import free_port


class Relay:
    """Discovery and JWKS of `idp_url`, served from a port of our own until `stop()`."""

    def __init__(self, idp_url: str) -> None:
        relay = self
        # Entries replacing the provider's own in the discovery document.
        self.overrides: dict[str, str] = {}
        # path -> a JSON object served with 200 instead of the provider's document there.
        self.replaced: dict[str, dict] = {}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                config = requests.get(f"{idp_url}/.well-known/openid-configuration", timeout=5)
                if self.path in relay.replaced:
                    body = relay.replaced[self.path]
                elif self.path.startswith("/.well-known/openid-configuration"):
                    body = {**config.json(), "jwks_uri": f"{relay.url}/jwks", **relay.overrides}
                elif self.path == "/jwks":
                    body = requests.get(config.json()["jwks_uri"], timeout=5).json()
                else:
                    self.send_error(404)
                    return
                payload = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass  # the relay's access log would only clutter the test output

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
            self.thread.join()
        self.server.server_close()


@pytest.fixture
def relay(idp_url):
    server = Relay(idp_url)
    yield server
    server.stop()


@pytest.fixture
def console(settings, relay, db):
    settings.GOOGLE_WORKSPACE_DOMAINS = ["acme.example"]
    settings.SOCIALACCOUNT_PROVIDERS = console_google(relay.url)
    return relay


@pytest.fixture
def google(settings, relay, signing_key):
    settings.GOOGLE_OIDC_ISSUER = relay.url
    settings.GOOGLE_CLIENT_ID = "autoglue-test-client"
    settings.GOOGLE_CLIENT_SECRET = "CANARY-google-client-secret"
    settings.GOOGLE_WORKSPACE_DOMAINS = ["acme.example"]
    settings.OAUTH_REDIRECT_BASE = "http://testserver"
    return relay


def _console_sign_in(idp_url: str, sub: str):
    _put_user(idp_url, sub, email=f"{sub}@acme.example", email_verified=True, hd="acme.example")
    client = Client()
    start = client.post("/accounts/oidc/google/login/")
    assert start.status_code == 302, start.content
    approve = requests.post(
        start["Location"],
        data={"sub": sub, "action": "authorize"},
        allow_redirects=False,
        timeout=5,
    )
    callback = urlsplit(approve.headers["Location"])
    return client, client.get(f"{callback.path}?{callback.query}")


def _api_sign_in(idp_url: str, sub: str):
    _put_user(idp_url, sub, email=f"{sub}@acme.example", email_verified=True, hd="acme.example")
    browser = APIClient()
    auth_url = browser.post("/api/v1/auth/google/start").json()["auth_url"]
    approve = requests.post(
        auth_url, data={"sub": sub, "action": "authorize"}, allow_redirects=False, timeout=5
    )
    query = {k: v[0] for k, v in parse_qs(urlsplit(approve.headers["Location"]).query).items()}
    return browser.get("/api/v1/auth/google/callback", query)


def _no_traceback(caplog) -> None:
    # A 5xx is logged as one (the access line); what must not appear is an unhandled exception.
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not [r for r in caplog.records if getattr(r, "event", "") == "http_panic"]


def test_continue_with_the_provider_unreachable_is_a_readable_503_page(console, caplog):
    console.stop()

    response = Client().post("/accounts/oidc/google/login/")

    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    assert response["Retry-After"]
    page = response.content.decode()
    assert "cannot be reached" in page and "/admin/login/" in page
    assert "CANARY" not in page
    _no_traceback(caplog)


def test_an_api_client_gets_a_503_json_when_the_provider_is_unreachable(console, caplog):
    console.stop()

    response = Client().post("/accounts/oidc/google/login/", HTTP_ACCEPT="application/json")

    assert response.status_code == 503 and response["Retry-After"]
    assert response.json()["code"] == "identity_provider_unavailable"
    _no_traceback(caplog)


def test_a_head_of_the_sign_in_url_is_clean_when_the_provider_is_unreachable(console, caplog):
    console.stop()

    response = Client().head("/accounts/oidc/google/login/")

    assert response.status_code == 200
    _no_traceback(caplog)


def test_a_provider_outage_does_not_stop_the_next_console_sign_in(console, settings, idp_url):
    # Every use tries the provider again, so the second sign-in relies on the stale copy.
    settings.SSO_PROVIDER_CACHE_SECONDS = 0
    _, first = _console_sign_in(idp_url, "olga")
    assert first.status_code == 302
    console.stop()

    client, second = _console_sign_in(idp_url, "oscar")

    assert second.status_code == 302, second.content
    assert "_auth_user_id" in client.session
    assert User.objects.filter(primary_email="oscar@acme.example").exists()


def test_the_api_sign_in_start_is_a_503_with_retry_after_when_the_provider_is_unreachable(
    google, caplog
):
    google.stop()

    response = APIClient().post("/api/v1/auth/google/start")

    assert response.status_code == 503 and response["Retry-After"]
    assert response.json()["code"] == "identity_provider_unavailable"
    _no_traceback(caplog)


def test_a_provider_outage_does_not_stop_the_next_api_sign_in(google, settings, idp_url):
    settings.SSO_PROVIDER_CACHE_SECONDS = 0

    assert _api_sign_in(idp_url, "amy").status_code == 200
    google.stop()

    response = _api_sign_in(idp_url, "ann")

    assert response.status_code == 200, response.content
    assert response.json()["token_type"] == "Bearer"


def test_a_token_endpoint_that_cannot_be_reached_is_a_503_not_a_refusal(google, idp_url, caplog):
    google.overrides["token_endpoint"] = f"http://127.0.0.1:{free_port()}/oauth2/token"
    _put_user(idp_url, "tom", email="tom@acme.example", email_verified=True, hd="acme.example")
    browser = APIClient()
    auth_url = browser.post("/api/v1/auth/google/start").json()["auth_url"]
    approve = requests.post(
        auth_url, data={"sub": "tom", "action": "authorize"}, allow_redirects=False, timeout=5
    )
    query = {k: v[0] for k, v in parse_qs(urlsplit(approve.headers["Location"]).query).items()}

    response = browser.get("/api/v1/auth/google/callback", query)

    assert response.status_code == 503 and response["Retry-After"]
    assert response.json()["code"] == "identity_provider_unavailable"
    _no_traceback(caplog)


@pytest.mark.parametrize(
    ("path", "answer"),
    [
        ("/.well-known/openid-configuration", {"error": "quota exceeded"}),
        ("/.well-known/openid-configuration", {"issuer": "x", "jwks_uri": "file:///etc/passwd"}),
        ("/jwks", {"error": "quota exceeded"}),
    ],
)
def test_a_provider_answering_a_wrong_document_does_not_stop_the_next_api_sign_in(
    google, settings, idp_url, caplog, path, answer
):
    settings.SSO_PROVIDER_CACHE_SECONDS = 0

    assert _api_sign_in(idp_url, "amy").status_code == 200
    # A proxy (or a broken provider) answers 200 with something else: the good copy is kept.
    google.replaced[path] = answer

    response = _api_sign_in(idp_url, "ann")

    assert response.status_code == 200, response.content
    assert response.json()["token_type"] == "Bearer"
    _no_traceback(caplog)

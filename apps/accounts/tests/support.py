"""Fixtures for tests that authenticate with real credentials (JWTs, API keys)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest
import requests
from django.conf import settings
from rest_framework.test import APIClient

from apps.accounts import jwt as access_tokens
from apps.accounts import services


@pytest.fixture(autouse=True)
def _forget_local_keys():
    """Verified keys are remembered per process; each test starts without that memory."""
    from apps.accounts.apikeys import forget_local_key

    forget_local_key()
    yield
    forget_local_key()


@pytest.fixture
def signing_key(db):
    """An active RS256 signing key (2048 bits: generation speed matters more than strength)."""
    access_tokens.reset_keyring()
    key = services.signing_key_generate(bits=2048)
    yield key
    access_tokens.reset_keyring()


@pytest.fixture
def bearer_client(signing_key):
    """`bearer_client(user, org=None)`: a client sending a real access token (and X-Org-ID)."""

    def make(user, org=None) -> APIClient:
        client = APIClient()
        token = access_tokens.issue_access_token(user_id=user.pk)
        client.credentials(
            HTTP_AUTHORIZATION=f"Bearer {token}",
            **({"HTTP_X_ORG_ID": str(org.pk)} if org is not None else {}),
        )
        return client

    return make


@pytest.fixture
def real_org_key_client(db):
    """`real_org_key_client(org)`: a client sending a real org key/secret pair."""

    def make(org) -> APIClient:
        created = services.api_key_create_for_org(organization=org, name="automation")
        client = APIClient()
        client.credentials(HTTP_X_ORG_KEY=created.plain, HTTP_X_ORG_SECRET=created.secret)
        client.key = created.key
        return client

    return make


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def idp_url():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "apps.accounts.tests.oidc_idp", "--port", str(port)],
        cwd=settings.BASE_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if requests.get(f"{url}/.well-known/openid-configuration", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        else:
            pytest.fail("the OIDC provider did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def console_google(server_url: str) -> dict:
    """SOCIALACCOUNT_PROVIDERS for the console's Google sign-in against `server_url` (the
    provider's issuer), as settings.py builds it in production."""
    return {
        "openid_connect": {
            "provider_class": "apps.accounts.oidc.NonceOpenIDConnectProvider",
            "OAUTH_PKCE_ENABLED": True,
            "APPS": [
                {
                    "provider_id": "google",
                    "name": "Google",
                    "client_id": "console-client",
                    "secret": "CANARY-console-secret",
                    "settings": {"server_url": server_url, "oauth_pkce_enabled": True},
                }
            ],
        }
    }

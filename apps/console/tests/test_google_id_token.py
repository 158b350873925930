"""On the console's Google sign-in the ID token is verified as on the API's: allauth alone would
skip the signature of a token fetched from the token endpoint."""

from __future__ import annotations

import time
from types import SimpleNamespace

import jwt
import pytest
import requests
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import RequestFactory

from apps.accounts.oidc import VerifyingOpenIDConnectAdapter
from apps.accounts.tests.support import idp_url  # noqa: F401 - the real provider process


@pytest.fixture
def adapter(idp_url):  # noqa: F811
    verifier = VerifyingOpenIDConnectAdapter(RequestFactory().get("/"), "google")
    verifier._openid_config = requests.get(
        f"{idp_url}/.well-known/openid-configuration", timeout=5
    ).json()
    verifier.did_fetch_access_token = True  # as after the code exchange
    return verifier


def _claims(config: dict) -> dict:
    now = int(time.time())
    return {
        "iss": config["issuer"],
        "aud": "console-client",
        "sub": "mallory",
        "email": "mallory@acme.example",
        "email_verified": True,
        "iat": now,
        "exp": now + 300,
        "nonce": "n",
    }


def test_an_id_token_signed_by_someone_else_is_refused(adapter):
    kid = requests.get(adapter.openid_config["jwks_uri"], timeout=5).json()["keys"][0]["kid"]
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(
        _claims(adapter.openid_config), stranger, algorithm="RS256", headers={"kid": kid}
    )
    with pytest.raises(OAuth2Error):
        adapter._decode_id_token(SimpleNamespace(client_id="console-client"), forged)


def test_an_unsigned_id_token_is_refused(adapter):
    unsigned = jwt.encode(_claims(adapter.openid_config), None, algorithm="none")
    with pytest.raises(OAuth2Error):
        adapter._decode_id_token(SimpleNamespace(client_id="console-client"), unsigned)

"""Access tokens: what a valid token gets, and every forged or misused token that must not
(RFC 8725 negative cases)."""

from __future__ import annotations

import base64
import json
import time
import uuid

import jwt as pyjwt
import pytest
from django.conf import settings
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts import jwt as access_tokens
from apps.accounts import services


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(user, **overrides) -> dict:
    now = int(time.time())
    claims = {
        "sub": str(user.pk),
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
        "token_type": "access",
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(key, claims: dict, **headers) -> str:
    header = {"kid": key.kid, "typ": "at+jwt", **headers}
    header = {k: v for k, v in header.items() if v is not None}
    return pyjwt.encode(claims, str(key.private_pem), algorithm="RS256", headers=header)


def _me(token: str):
    client = APIClient()
    return client.get("/api/v1/me", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_a_valid_access_token_reaches_me(member, signing_key):
    token = access_tokens.issue_access_token(user_id=member.pk)
    response = _me(token)
    assert response.status_code == 200
    assert response.json()["primary_email"] == member.primary_email


def test_issued_tokens_carry_kid_issuer_audience_and_a_one_hour_lifetime(member, signing_key):
    token = access_tokens.issue_access_token(user_id=member.pk)
    header = pyjwt.get_unverified_header(token)
    claims = pyjwt.decode(token, options={"verify_signature": False})
    assert header["kid"] == signing_key.kid and header["alg"] == "RS256"
    assert claims["iss"] == settings.JWT_ISSUER and claims["aud"] == settings.JWT_AUDIENCE
    assert claims["exp"] - claims["iat"] == 3600


def test_a_token_signed_by_us_but_hand_built_is_accepted(member, signing_key):
    """Sanity check for the negative cases below: the forging helper itself produces valid
    tokens, so each rejection is due to the one thing that test changes."""
    assert _me(_sign(signing_key, _claims(member))).status_code == 200


def test_alg_none_is_rejected(member, signing_key):
    token = (
        f"{_b64({'alg': 'none', 'typ': 'at+jwt', 'kid': signing_key.kid})}.{_b64(_claims(member))}."
    )
    assert _me(token).status_code == 401


def test_hs256_signed_with_the_public_key_is_rejected(member, signing_key):
    header = _b64({"alg": "HS256", "typ": "at+jwt", "kid": signing_key.kid})
    body = _b64(_claims(member))
    import hashlib
    import hmac

    sig = hmac.new(
        signing_key.public_pem.encode(), f"{header}.{body}".encode(), hashlib.sha256
    ).digest()
    token = f"{header}.{body}.{base64.urlsafe_b64encode(sig).rstrip(b'=').decode()}"
    assert _me(token).status_code == 401


def test_a_token_signed_with_another_key_is_rejected(member, signing_key):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    token = pyjwt.encode(
        _claims(member), pem, algorithm="RS256", headers={"kid": signing_key.kid, "typ": "at+jwt"}
    )
    assert _me(token).status_code == 401


@pytest.mark.parametrize("kid", ["unknown-kid", None])
def test_an_unknown_or_missing_kid_is_rejected(member, signing_key, kid):
    token = _sign(signing_key, _claims(member), kid=kid)
    if kid is None:
        token = pyjwt.encode(
            _claims(member),
            str(signing_key.private_pem),
            algorithm="RS256",
            headers={"typ": "at+jwt"},
        )
    assert _me(token).status_code == 401


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": int(time.time()) - 120},
        {"nbf": int(time.time()) + 600},
        {"iss": "https://evil.example"},
        {"aud": "someone-else"},
        {"token_type": "refresh"},
        {"exp": None},
        {"sub": "not-a-uuid"},
        {"sub": str(uuid.uuid4())},
    ],
    ids=[
        "expired",
        "not-yet-valid",
        "wrong-issuer",
        "wrong-audience",
        "refresh-token-type",
        "no-expiry",
        "bad-subject",
        "unknown-user",
    ],
)
def test_tokens_with_bad_claims_are_rejected(member, signing_key, overrides):
    assert _me(_sign(signing_key, _claims(member, **overrides))).status_code == 401


@pytest.mark.parametrize(
    "headers",
    [{"typ": "JWT"}, {"jku": "https://evil.example/jwks"}, {"x5u": "https://evil.example/cert"}],
)
def test_tokens_with_a_wrong_type_or_key_reference_are_rejected(member, signing_key, headers):
    assert _me(_sign(signing_key, _claims(member), **headers)).status_code == 401


def test_an_opaque_refresh_token_is_not_an_access_token(member, signing_key):
    pair = services.token_pair_issue(user=member)
    assert _me(pair.refresh_token).status_code == 401


def test_a_disabled_user_is_refused_even_with_a_valid_token(member, signing_key):
    token = access_tokens.issue_access_token(user_id=member.pk)
    member.is_disabled = True
    member.save()
    assert _me(token).status_code == 401


def test_a_wrong_authorization_scheme_is_401_not_anonymous(member, signing_key):
    response = APIClient().get("/api/v1/me", HTTP_AUTHORIZATION="Basic Zm9vOmJhcg==")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_no_credentials_is_401_not_403(db):
    response = APIClient().get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_rotation_keeps_old_tokens_valid_and_new_tokens_use_the_new_key(member, signing_key):
    old_token = access_tokens.issue_access_token(user_id=member.pk)
    new_key = services.signing_key_generate(bits=2048)
    new_token = access_tokens.issue_access_token(user_id=member.pk)
    assert pyjwt.get_unverified_header(new_token)["kid"] == new_key.kid
    assert _me(old_token).status_code == 200
    assert _me(new_token).status_code == 200
    services.signing_key_retire(key=signing_key, at=timezone.now())
    assert _me(old_token).status_code == 401
    assert _me(new_token).status_code == 200


@pytest.mark.parametrize("path", ["/.well-known/jwks.json", "/api/v1/.well-known/jwks.json"])
def test_jwks_publishes_every_active_key(signing_key, path):
    second = services.signing_key_generate(bits=2048)
    response = APIClient().get(path)
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert {k["kid"] for k in keys} == {signing_key.kid, second.kid}
    assert all(k["kty"] == "RSA" and k["alg"] == "RS256" and k["use"] == "sig" for k in keys)
    assert all("d" not in k for k in keys)


def test_a_jwks_key_verifies_an_issued_token(member, signing_key):
    token = access_tokens.issue_access_token(user_id=member.pk)
    jwk = APIClient().get("/.well-known/jwks.json").json()["keys"][0]
    public = pyjwt.PyJWK(jwk).key
    claims = pyjwt.decode(token, public, algorithms=["RS256"], audience=settings.JWT_AUDIENCE)
    assert claims["sub"] == str(member.pk)


def test_the_private_key_is_not_stored_in_plaintext(signing_key):
    from apps.accounts.models import SigningKey

    stored = SigningKey.objects.filter(pk=signing_key.pk).values_list("private_pem", flat=True)[0]
    assert "PRIVATE KEY" not in stored


def test_the_cookie_authenticates_browser_get_requests_only(member, signing_key):
    token = access_tokens.issue_access_token(user_id=member.pk)
    client = APIClient()
    client.cookies["ag_jwt"] = f"Bearer {token}"
    assert client.get("/api/v1/me").status_code == 200
    # Unsafe methods never authenticate by cookie (no CSRF through it).
    assert client.patch("/api/v1/me", {"display_name": "x"}, format="json").status_code == 401


def test_a_key_another_process_just_generated_is_accepted_before_the_cache_expires(member):
    """A rotation in one web process: the others still hold their cached keyring, yet a token
    signed with the new key is accepted (the unknown kid makes them look again)."""
    services.signing_key_generate()
    stale = access_tokens.keyring()  # this process's keyring, before the other's rotation
    newer = services.signing_key_generate()  # "another process" (it resets only its own cache)
    stale.loaded_at -= access_tokens.UNKNOWN_KID_RELOAD_SECONDS + 1
    access_tokens._keyring = stale
    assert newer.kid not in stale.verifiers
    assert _me(_sign(newer, _claims(member))).status_code == 200


def test_made_up_kids_reload_the_keyring_at_most_once_a_second(member, signing_key):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    access_tokens.keyring()  # loaded just now
    with CaptureQueriesContext(connection) as queries:
        for _ in range(20):
            access_tokens._verifier(uuid.uuid4().hex)
    assert not [q for q in queries.captured_queries if "signingkey" in q["sql"]]

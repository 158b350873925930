"""What the JSON parser refuses on every real route: nesting past its bound and strings the
rest of the system could not store or serve back (lone UTF-16 surrogates)."""

from __future__ import annotations

import pytest

CREDENTIAL = {
    "credential_provider": "cloudflare",
    "kind": "api_token",
    "schema_version": 1,
    "name": "dns",
    "scope_kind": "provider",
    "scope_version": 1,
    "scope": {},
}


def _post_raw(client, path: str, raw: bytes, method: str = "POST"):
    return client.generic(method, path, raw, content_type="application/json")


def _nested(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/credentials"),
        ("POST", "/api/v1/labels"),
        ("POST", "/api/v1/clusters"),
        ("PATCH", "/api/v1/me"),
        ("POST", "/api/v1/auth/refresh"),
        ("POST", "/api/v1/orgs"),
    ],
)
def test_a_300_level_600_byte_body_is_a_400_on_every_json_route(api, method, path):
    raw = _nested(300)
    assert len(raw) == 600
    response = _post_raw(api, path, raw, method)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"
    assert "deeper" in response.json()["message"]


def test_nesting_just_past_the_bound_is_refused_inside_an_otherwise_valid_body(api):
    deep = b'{"key": "k", "value": ' + _nested(64) + b"}"
    response = _post_raw(api, "/api/v1/labels", deep)
    assert response.status_code == 400 and response.json()["code"] == "invalid_json"


def test_nesting_within_the_bound_reaches_validation(api):
    shallow = b'{"key": "k", "value": ' + _nested(63) + b"}"
    response = _post_raw(api, "/api/v1/labels", shallow)
    assert response.status_code == 400 and response.json()["code"] == "validation_error"


def test_a_body_deeper_than_the_decoder_can_go_is_still_a_400(api):
    response = _post_raw(api, "/api/v1/labels", _nested(100_000))
    assert response.status_code == 400 and response.json()["code"] == "invalid_json"


@pytest.mark.parametrize(
    "secret",
    [
        b'{"token": "abc\\ud800"}',
        b'{"token": "\\udfff"}',
        b'{"token": "ok", "\\ud83d": "x"}',
    ],
)
def test_a_lone_surrogate_in_a_credential_secret_is_a_400(api, secret):
    body = (
        b'{"credential_provider": "cloudflare", "kind": "api_token", "schema_version": 1,'
        b' "name": "dns", "scope_kind": "provider", "scope_version": 1, "scope": {},'
        b' "secret": ' + secret + b"}"
    )
    response = _post_raw(api, "/api/v1/credentials", body)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"
    assert "surrogate" in response.json()["message"]


def test_a_lone_surrogate_in_a_name_is_a_400_on_patch_too(api):
    response = _post_raw(api, "/api/v1/me", b'{"display_name": "a\\udc00b"}', "PATCH")
    assert response.status_code == 400 and response.json()["code"] == "invalid_json"


def test_a_valid_surrogate_pair_is_an_ordinary_character(api):
    response = _post_raw(api, "/api/v1/me", b'{"display_name": "A \\ud83d\\ude00"}', "PATCH")
    assert response.status_code == 200
    assert response.json()["display_name"] == "A \U0001f600"

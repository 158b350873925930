"""Reading groups from the loopback stand-in of Google's endpoints (the network edge)."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from apps.groupsync import clients
from apps.groupsync.tests.google_standin import (
    ADMIN,
    CLIENT_EMAIL,
    KEY_ID,
    PUBLIC_KEY,
    service_account_json,
)

ALICE = "alice@acme.example"


def _client() -> clients.WorkspaceGroupsClient:
    key = clients.service_account_key_parse(service_account_json())
    return clients.WorkspaceGroupsClient(key=key, subject=ADMIN)


def test_the_assertion_is_signed_by_the_service_account_for_the_delegated_admin(google):
    google.add("eng@acme.example", ALICE)

    assert _client().groups_of(ALICE).groups == ["eng@acme.example"]

    header, claims = google.assertions[0]
    assert header == {"alg": "RS256", "kid": KEY_ID, "typ": "JWT"}
    assert claims["iss"] == CLIENT_EMAIL
    assert claims["sub"] == ADMIN
    assert claims["aud"] == f"{google.base}/token"
    assert claims["scope"] == clients.CLOUD_IDENTITY_SCOPE
    # Five minutes, not the hour Google would accept: a leaked assertion buys little.
    assert 0 < claims["exp"] - claims["iat"] <= 300
    # The stand-in verified the signature; verify it here as well, with the public key only.
    token = _client().assertion(clients.CLOUD_IDENTITY_SCOPE)
    jwt.decode(token, PUBLIC_KEY, algorithms=["RS256"], audience=f"{google.base}/token")


def test_nested_groups_are_found_through_cloud_identity(google):
    google.add("platform@acme.example", ALICE)
    google.add("eng@acme.example", "platform@acme.example")
    google.add("everyone@acme.example", "eng@acme.example")
    google.add("sales@acme.example", "bob@acme.example")

    groups = _client().groups_of(ALICE).groups

    assert groups == ["eng@acme.example", "everyone@acme.example", "platform@acme.example"]
    assert {path for path, _ in google.requests} == {
        "/v1/groups/-/memberships:searchTransitiveGroups"
    }


def test_every_page_is_followed(google):
    google.page_size = 2
    names = [f"team{i}@acme.example" for i in range(7)]
    for name in names:
        google.add(name, ALICE)

    assert _client().groups_of(ALICE).groups == sorted(names)
    tokens = [query.get("pageToken") for _, query in google.requests]
    assert tokens == [None, ["p2"], ["p4"], ["p6"]]


def test_a_403_from_cloud_identity_falls_back_to_the_directory_api_with_its_own_scope(google):
    google.fail["cloud_identity"] = 403
    google.page_size = 1
    google.add("eng@acme.example", ALICE)
    google.add("ops@acme.example", ALICE)

    assert _client().groups_of(ALICE).groups == ["eng@acme.example", "ops@acme.example"]
    assert [claims["scope"] for _, claims in google.assertions] == [
        clients.CLOUD_IDENTITY_SCOPE,
        clients.DIRECTORY_SCOPE,
    ]
    directory = [query for path, query in google.requests if path.startswith("/admin/")]
    assert [q["userKey"] for q in directory] == [[ALICE], [ALICE]]
    assert [q.get("pageToken") for q in directory] == [None, ["p1"]]


def test_the_directory_fallback_lists_direct_groups_only(google):
    google.fail["cloud_identity"] = 404
    google.add("platform@acme.example", ALICE)
    google.add("eng@acme.example", "platform@acme.example")

    read = _client().groups_of(ALICE)

    assert read.groups == ["platform@acme.example"]
    assert read.transitive is False


def test_a_cloud_identity_read_says_it_is_transitive(google):
    google.add("eng@acme.example", ALICE)

    assert _client().groups_of(ALICE).transitive is True


def test_a_403_on_a_later_cloud_identity_page_fails_the_read_instead_of_falling_back(google):
    google.page_size = 1
    google.add("eng@acme.example", ALICE)
    google.add("ops@acme.example", ALICE)
    google.fail_page = (2, 403)

    with pytest.raises(clients.GroupsReadError, match="Cloud Identity answered 403"):
        _client().groups_of(ALICE)
    assert not [path for path, _ in google.requests if path.startswith("/admin/")]


@pytest.mark.parametrize(
    "name", ["GOOGLE_TOKEN_URL", "GOOGLE_CLOUD_IDENTITY_URL", "GOOGLE_DIRECTORY_URL"]
)
def test_a_google_url_that_is_plain_http_beyond_loopback_is_refused(google, settings, name):
    setattr(settings, name, "http://groups.internal.example")
    google.add("eng@acme.example", ALICE)

    with pytest.raises(clients.GroupsReadError, match=f"{name} must be an https URL"):
        _client().groups_of(ALICE)
    assert not [path for path, _ in google.requests if "internal" in path]


def test_an_address_with_a_trailing_newline_is_not_looked_up(google):
    with pytest.raises(clients.GroupsReadError):
        _client().groups_of(ALICE + "\n")
    assert google.requests == []


def test_a_delegation_without_the_cloud_identity_scope_falls_back_to_the_directory_api(google):
    google.delegated = {clients.DIRECTORY_SCOPE}
    google.add("eng@acme.example", ALICE)

    assert _client().groups_of(ALICE).groups == ["eng@acme.example"]


@pytest.mark.parametrize(
    "fault",
    [
        {"cloud_identity": 500},
        {"cloud_identity": 503},
        {"cloud_identity": 403, "directory": 500},
        {"cloud_identity": 403, "directory": 403},
        {"token": 500},
    ],
)
def test_a_server_error_anywhere_is_a_failed_read(google, fault):
    google.fail.update(fault)
    google.add("eng@acme.example", ALICE)

    with pytest.raises(clients.GroupsReadError):
        _client().groups_of(ALICE)


def test_a_failure_on_a_later_page_fails_the_whole_read(google):
    google.page_size = 1
    google.fail_page = (2, 500)
    google.add("eng@acme.example", ALICE)
    google.add("ops@acme.example", ALICE)

    with pytest.raises(clients.GroupsReadError, match="500"):
        _client().groups_of(ALICE)


def test_a_page_that_is_not_json_fails_the_read(google):
    google.page_size = 1
    google.garbage_page = 2
    google.add("eng@acme.example", ALICE)
    google.add("ops@acme.example", ALICE)

    with pytest.raises(clients.GroupsReadError, match="not JSON"):
        _client().groups_of(ALICE)


def test_a_delegation_that_grants_neither_scope_fails_the_read(google):
    google.delegated = set()

    with pytest.raises(clients.GroupsReadError, match="token endpoint refused"):
        _client().groups_of(ALICE)


def test_an_api_that_does_not_answer_in_time_fails_the_read(google, settings):
    settings.GOOGLE_GROUPS_TIMEOUT_SECONDS = 0.3
    google.delay_seconds = 1.0

    with pytest.raises(clients.GroupsReadError, match="Timeout"):
        _client().groups_of(ALICE)


def test_the_whole_read_fits_in_one_timeout_however_many_pages_it_has(google, settings):
    settings.GOOGLE_GROUPS_TIMEOUT_SECONDS = 1
    google.delay_seconds = 0.4  # each page answers in time, five of them do not
    google.page_size = 1
    for i in range(5):
        google.add(f"team{i}@acme.example", ALICE)

    started = time.monotonic()
    with pytest.raises(clients.GroupsReadError, match="took longer than 1 s|Timeout"):
        _client().groups_of(ALICE)
    assert time.monotonic() - started < 1.3
    assert len(google.requests) < 5


def test_an_address_that_would_change_the_query_is_never_sent(google):
    with pytest.raises(clients.GroupsReadError):
        _client().groups_of("x' || true || 'y@acme.example")
    assert google.requests == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "JSON key file"),
        (json.dumps({"type": "authorized_user"}), "service_account"),
        (json.dumps({**json.loads(service_account_json()), "client_email": "x"}), "client_email"),
        (json.dumps({**json.loads(service_account_json()), "private_key": "CANARY"}), "PEM"),
    ],
)
def test_a_key_that_is_not_a_service_account_key_is_refused(text, message):
    with pytest.raises(ValueError, match=message) as caught:
        clients.service_account_key_parse(text)
    assert "CANARY" not in str(caught.value)


def test_a_key_that_is_not_rsa_is_refused():
    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    with pytest.raises(ValueError, match="RSA"):
        clients.service_account_key_parse(service_account_json(pem))

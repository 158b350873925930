"""Failed API-key verifications: one answer for every failure, the same cost for an unknown key
id as for a wrong secret, a bounded number of slow hashes per address, and never a lockout of
the key's rightful owner."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from apps.accounts import services, tokens
from apps.accounts.apikeys import API_KEY_CACHE_PREFIX, forget_local_key

ATTACKER = "203.0.113.66"


@pytest.fixture
def hash_calls(monkeypatch):
    calls = []
    real = tokens.slow_verify

    def spy(stored_hash, secret):
        calls.append(1)
        return real(stored_hash, secret)

    monkeypatch.setattr(tokens, "slow_verify", spy)
    return calls


def _get_me(credential: str, address: str = ATTACKER):
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_X_API_KEY=credential)
    return client.get("/api/v1/me")


def _forget_verified(public_id: str) -> None:
    """As after the cache TTL: the next request takes the slow path again."""
    cache.delete(API_KEY_CACHE_PREFIX + public_id)
    forget_local_key()


def test_an_unknown_key_id_and_a_wrong_secret_get_the_same_answer_at_the_same_cost(
    member, hash_calls
):
    created = services.api_key_create_for_user(user=member)
    unknown = _get_me(f"u_{'0' * 16}_{'A' * 43}")
    assert len(hash_calls) == 1
    wrong = _get_me(f"u_{created.key.public_id}_{'A' * 43}")
    assert len(hash_calls) == 2
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()


def test_past_the_budget_neither_unknown_ids_nor_wrong_secrets_reach_the_slow_hash(
    member, settings, hash_calls
):
    settings.API_KEY_MAX_FAILURES = 5
    created = services.api_key_create_for_user(user=member)
    answers = set()
    for n in range(20):
        public_id = f"{n:016x}" if n % 2 else created.key.public_id
        response = _get_me(f"u_{public_id}_{'A' * 43}")
        assert response.status_code == 401
        answers.add(response.content)
    assert len(hash_calls) == 5
    assert len(answers) == 1
    # Another address has its own budget.
    assert _get_me(f"u_{'f' * 16}_{'A' * 43}", address="198.51.100.7").status_code == 401
    assert len(hash_calls) == 6


def test_eleven_wrong_secrets_do_not_block_the_right_one_from_the_same_address(member):
    created = services.api_key_create_for_user(user=member)
    for _ in range(11):
        assert _get_me(f"u_{created.key.public_id}_{'A' * 43}").status_code == 401
    assert _get_me(created.plain).status_code == 200
    _forget_verified(created.key.public_id)
    assert _get_me(created.plain).status_code == 200


def test_an_org_key_pair_is_not_locked_out_by_wrong_secrets_from_its_address(db, org):
    created = services.api_key_create_for_org(organization=org)
    client = APIClient(REMOTE_ADDR=ATTACKER)
    client.credentials(HTTP_X_ORG_KEY=created.plain, HTTP_X_ORG_SECRET="wrong")
    for _ in range(12):
        assert client.get(f"/api/v1/orgs/{org.pk}").status_code == 401
    client.credentials(HTTP_X_ORG_KEY=created.plain, HTTP_X_ORG_SECRET=created.secret)
    assert client.get(f"/api/v1/orgs/{org.pk}").status_code == 200


def test_a_revoked_key_is_refused_like_an_unknown_one(member, hash_calls):
    created = services.api_key_create_for_user(user=member)
    services.api_key_revoke(key=created.key)
    revoked = _get_me(created.plain)
    unknown = _get_me(f"u_{'0' * 16}_{'A' * 43}")
    assert revoked.status_code == unknown.status_code == 401
    assert revoked.json() == unknown.json()
    assert len(hash_calls) == 2

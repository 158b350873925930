"""GET /api/v1/expiring-keys: an organization's admins see its keys that expire soon."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.models import APIKey
from apps.maintenance.tests.factories import APIKeyFactory

URL = "/api/v1/expiring-keys"


def _in(days: float):
    return timezone.now() + timedelta(days=days)


@pytest.fixture
def keys(org, other_org, member):
    return {
        "soon": APIKeyFactory(organization=org, name="soon", expires_at=_in(2)),
        "sooner": APIKeyFactory(organization=org, name="sooner", expires_at=_in(1)),
        "later": APIKeyFactory(organization=org, name="later", expires_at=_in(40)),
        "never": APIKeyFactory(organization=org, name="never", expires_at=None),
        "expired": APIKeyFactory(organization=org, name="expired", expires_at=_in(-1)),
        "revoked": APIKeyFactory(
            organization=org, name="revoked", expires_at=_in(2), revoked_at=timezone.now()
        ),
        "ephemeral": APIKeyFactory(
            organization=org, name="bastion", expires_at=_in(1), is_ephemeral=True
        ),
        "user key": APIKeyFactory(
            scope=APIKey.Scope.USER, user=member, name="personal", expires_at=_in(1)
        ),
        "globex": APIKeyFactory(organization=other_org, name="globex", expires_at=_in(1)),
    }


def test_admin_sees_the_orgs_keys_expiring_within_the_window_soonest_first(
    client_for, admin_user, org, keys, settings, django_assert_max_num_queries
):
    settings.EXPIRY_WARNING_DAYS = 14
    with django_assert_max_num_queries(6):
        response = client_for(admin_user, org).get(URL)
    assert response.status_code == 200
    body = response.json()
    assert [k["name"] for k in body] == ["sooner", "soon"]
    assert body[0]["prefix"] == keys["sooner"].prefix
    assert body[0]["id"] == str(keys["sooner"].pk)
    assert "secret_hash" not in body[0]
    assert keys["sooner"].secret_hash not in response.content.decode()


def test_window_can_be_widened_per_request(client_for, owner, org, keys):
    response = client_for(owner, org).get(URL, {"within_days": 60})
    assert [k["name"] for k in response.json()] == ["sooner", "soon", "later"]


def test_a_bad_window_is_a_400_naming_the_field(client_for, owner, org, keys):
    for value in ("abc", "-1", "9999"):
        response = client_for(owner, org).get(URL, {"within_days": value})
        assert response.status_code == 400
        assert response.json()["code"] == "validation_error"
        assert "within_days" in response.json()["message"]


def test_members_without_key_management_are_refused(api, keys):
    response = api.get(URL)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


def test_another_orgs_keys_are_out_of_reach(client_for, outsider, org, other_org, keys):
    own = client_for(outsider, other_org).get(URL)
    assert [k["name"] for k in own.json()] == ["globex"]
    # Charlie naming Acme's org id gets nothing of Acme's.
    foreign = client_for(outsider, org).get(URL)
    assert foreign.status_code in (403, 404)
    assert "sooner" not in foreign.content.decode()


def test_org_keys_cannot_list_expiring_keys(org_key_client, org, keys):
    response = org_key_client(org).get(URL)
    assert response.status_code == 403

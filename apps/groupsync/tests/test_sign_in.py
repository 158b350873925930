"""Group sync at sign-in, through the real sign-in flow: Google sign-in against a real OpenID
Connect provider process (apps/accounts/tests/oidc_idp.py) and the groups read from the
loopback stand-in of Google's APIs."""

from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.accounts.tests.support import idp_url, signing_key  # noqa: F401
from apps.accounts.tests.test_sso import _approve, _callback, _put_user, _start
from apps.audit.models import AuditEntry
from apps.groupsync.tests.factories import GroupRoleMappingFactory, GroupSyncSettingsFactory
from apps.orgs.models import Membership
from apps.orgs.tests.factories import OrganizationFactory

ALICE = "alice@acme.example"
LEADS = "leads@acme.example"


@pytest.fixture
def sign_in(settings, idp_url, signing_key):  # noqa: F811 - the fixtures imported above
    settings.GOOGLE_OIDC_ISSUER = idp_url
    settings.GOOGLE_CLIENT_ID = "autoglue-test-client"
    settings.GOOGLE_CLIENT_SECRET = "CANARY-google-client-secret"
    settings.GOOGLE_WORKSPACE_DOMAINS = ["acme.example"]
    settings.OAUTH_REDIRECT_BASE = "http://testserver"
    settings.SSO_ALLOWED_ORIGINS = []

    def run():
        _put_user(
            idp_url, "alice-sub", email=ALICE, email_verified=True, name="Alice", hd="acme.example"
        )
        browser = APIClient()
        auth_url = _start(mode="", browser=browser).json()["auth_url"]
        return _callback(_approve(auth_url, "alice-sub"), browser=browser)

    return run


@pytest.fixture
def acme(db):
    org = OrganizationFactory(name="Acme", domain="acme.example", domain_verified_at=timezone.now())
    GroupRoleMappingFactory(organization=org, group_email=LEADS, role="admin")
    GroupSyncSettingsFactory(organization=org)
    return org


def test_signing_in_applies_the_persons_groups(google, sign_in, acme):
    google.add("platform@acme.example", ALICE)
    google.add(LEADS, "platform@acme.example")

    response = sign_in()

    assert response.status_code == 200, response.content
    alice = User.objects.get(primary_email=ALICE)
    assert Membership.objects.get(user=alice, organization=acme).role == "admin"
    entry = AuditEntry.objects.get(organization_id=acme.pk, metadata__source="group_sync")
    assert entry.metadata["group"] == LEADS


def test_a_groups_api_that_is_down_neither_blocks_the_sign_in_nor_grants_anything(
    google, sign_in, acme
):
    google.add(LEADS, ALICE)
    google.fail["cloud_identity"] = 503

    response = sign_in()

    assert response.status_code == 200, response.content
    assert "access_token" in response.json()
    alice = User.objects.get(primary_email=ALICE)
    # The verified domain's auto-join still makes her a member; the groups add nothing.
    assert Membership.objects.get(user=alice, organization=acme).role == "member"
    assert not AuditEntry.objects.filter(metadata__source="group_sync").exists()

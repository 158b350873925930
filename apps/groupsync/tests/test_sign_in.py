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


def test_the_console_sign_in_applies_the_groups_too(google, settings, idp_url, acme):  # noqa: F811
    from apps.accounts.tests.support import console_google
    from apps.accounts.tests.test_console_login import _sign_in

    settings.GOOGLE_WORKSPACE_DOMAINS = ["acme.example"]
    settings.SOCIALACCOUNT_PROVIDERS = console_google(idp_url)
    google.add(LEADS, ALICE)

    client, response, _ = _sign_in(idp_url, "alice", name="Alice")

    assert response.status_code == 302
    alice = User.objects.get(primary_email=ALICE)
    assert Membership.objects.get(user=alice, organization=acme).role == "admin"


def test_no_key_token_or_answer_reaches_the_log_when_the_read_fails(google, sign_in, acme, caplog):
    google.add(LEADS, ALICE)
    google.fail["directory"] = 500
    google.delegated = {"https://www.googleapis.com/auth/admin.directory.group.readonly"}

    with caplog.at_level("DEBUG"):
        assert sign_in().status_code == 200

    failures = [r for r in caplog.records if r.getMessage() == "group_sync_failed"]
    assert [r.error for r in failures] == ["Directory API answered 500"]
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "PRIVATE KEY" not in text
    assert "ya29." not in text
    assert "Backend Error" not in text

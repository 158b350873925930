"""Fixtures shared by every app's tests.

The cast: Alice is a member of `org`, Olivia its owner, Adam an admin, Bob a read-only viewer;
Charlie belongs to `other_org` only. `api` is an API client acting as Alice in `org`.
`client_for(user, org)` and `org_key_client(org)` build clients for any principal; they
authenticate directly (DRF's force_authenticate), so the tenancy layer and role checks under
test still run in full. Real credential parsing is tested in apps/accounts.
"""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from apps.core.tenancy import MachineUser, OrgKeyPrincipal


@pytest.fixture(autouse=True)
def _clean_cache():
    """Rate-limit counters and cached lookups live in the real Redis; start every test empty,
    and with no memory of a cache outage (a process leaves the cache alone for a moment after
    one, apps.core.cache.cache_down)."""
    from apps.core.cache import cache_outage_forget
    from apps.observability.selectors import queues_check_forget

    cache_outage_forget()
    queues_check_forget()  # readyz's per-process queue verdict
    cache.clear()
    yield
    cache_outage_forget()
    cache.clear()


@pytest.fixture(autouse=True)
def _forget_process_keys():
    """JWT signing keys and unwrapped data keys are cached per process. A transactional test
    flushes their rows, so a later test must not sign or encrypt with keys the database (and a
    live server reading it) no longer has."""
    from apps.accounts.jwt import reset_keyring
    from apps.core.crypto.keys import clear_key_cache

    reset_keyring()
    clear_key_cache()
    yield


@pytest.fixture
def anon() -> APIClient:
    """An API client with no credentials."""
    return APIClient()


def _member(org, role, email):
    from apps.accounts.tests.factories import UserFactory
    from apps.orgs.tests.factories import MembershipFactory

    user = UserFactory(primary_email=email)
    MembershipFactory(user=user, organization=org, role=role)
    return user


@pytest.fixture
def org(db):
    from apps.orgs.tests.factories import OrganizationFactory

    return OrganizationFactory(name="Acme")


@pytest.fixture
def other_org(db):
    from apps.orgs.tests.factories import OrganizationFactory

    return OrganizationFactory(name="Globex")


@pytest.fixture
def owner(org):
    return _member(org, "owner", "olivia@acme.example")


@pytest.fixture
def admin_user(org):
    return _member(org, "admin", "adam@acme.example")


@pytest.fixture
def member(org):
    return _member(org, "member", "alice@acme.example")


@pytest.fixture
def viewer(org):
    return _member(org, "viewer", "bob@acme.example")


@pytest.fixture
def outsider(other_org):
    return _member(other_org, "owner", "charlie@globex.example")


@pytest.fixture
def client_for():
    def make(user, org=None) -> APIClient:
        client = APIClient()
        client.force_authenticate(user=user)
        if org is not None:
            client.credentials(HTTP_X_ORG_ID=str(org.pk))
        return client

    return make


@pytest.fixture
def org_key_client():
    def make(org) -> APIClient:
        principal = OrgKeyPrincipal(organization_id=org.pk, key_id=uuid.uuid4())
        client = APIClient()
        client.force_authenticate(user=MachineUser(principal), token=principal)
        return client

    return make


@pytest.fixture
def api(client_for, member, org) -> APIClient:
    """Alice, a member of `org`, with X-Org-ID set."""
    return client_for(member, org)


@pytest.fixture
def sshd_factory(tmp_path):
    """Start throwaway sshd processes on free loopback ports (stopped after the test).
    `sshd_factory(home=True)` gives every session a `$HOME` inside the test's folder."""
    from apps.infrastructure.tests.sshd import SSHDaemon, ensure_sshd

    ensure_sshd()
    daemons = []

    def start(*, home: bool = False) -> SSHDaemon:
        root = tmp_path / f"sshd-{len(daemons)}"
        root.mkdir()
        home_dir = None
        if home:
            home_dir = root / "home"
            home_dir.mkdir()
        daemon = SSHDaemon(root, home=home_dir)
        daemon.start()
        daemons.append(daemon)
        return daemon

    yield start
    for daemon in daemons:
        daemon.stop()


@pytest.fixture(scope="session")
def _moto_process(tmp_path_factory):
    from tests.aws import MotoServer

    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


@pytest.fixture
def moto_server(_moto_process, monkeypatch):
    """moto's AWS endpoint over HTTP, empty for each test. The AWS endpoint override and dummy
    ambient credentials point every boto3 client at it (code under test must still take its
    credentials from where production does; these only keep boto3 from looking elsewhere)."""
    _moto_process.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", _moto_process.url)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return _moto_process

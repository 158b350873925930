"""POST /api/v1/clusters/{id}/kubeconfigs: kubeconfigs that expire, signed by the cluster through
the CertificateSigningRequest API, against a stand-in of the Kubernetes API on loopback (mutual
TLS, a throwaway CA, real certificates: apps/clusters/tests/kube_standin.py)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import ssl
import time
import urllib.request

import psycopg
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from apps.accounts import services as account_services
from apps.audit.models import AuditEntry
from apps.clusters.tests.factories import ClusterFactory
from apps.clusters.tests.kube_standin import CRB_PREFIX, CSR_PREFIX, StandIn


@pytest.fixture
def standin(tmp_path):
    servers = []

    def start(mode: str = "sign", **kwargs) -> StandIn:
        server = StandIn(tmp_path, mode=mode, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def owner_client(bearer_client, owner, org):
    return bearer_client(owner, org)


def _issue(client, cluster, body=None):
    return client.post(f"/api/v1/clusters/{cluster.pk}/kubeconfigs", body or {}, format="json")


def _client_cert(kubeconfig: str) -> tuple[x509.Certificate, bytes, bytes]:
    user = yaml.safe_load(kubeconfig)["users"][0]["user"]
    cert_pem = base64.b64decode(user["client-certificate-data"])
    key_pem = base64.b64decode(user["client-key-data"])
    return x509.load_pem_x509_certificate(cert_pem), cert_pem, key_pem


def test_an_owner_gets_a_one_hour_view_kubeconfig_naming_them(
    owner_client, owner, org, standin, tmp_path
):
    api = standin()
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    response = _issue(owner_client, cluster)
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["access"] == "view"
    assert body["groups"] == ["autoglue:viewers", f"autoglue:user:{owner.pk}"]
    assert body["username"] == owner.primary_email
    cert, cert_pem, key_pem = _client_cert(body["kubeconfig"])
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == owner.primary_email
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "autoglue:viewers",
        f"autoglue:user:{owner.pk}",
    ]
    left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=58) < left <= dt.timedelta(hours=1)
    assert dt.datetime.fromisoformat(body["expires_at"]) == cert.not_valid_after_utc
    cert.verify_directly_issued_by(api.ca.cert)
    # The key in the kubeconfig is the certificate's, and the API accepts the pair.
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()
    (tmp_path / "c.pem").write_bytes(cert_pem)
    (tmp_path / "k.pem").write_bytes(key_pem)
    doc = yaml.safe_load(body["kubeconfig"])
    assert doc["clusters"][0]["cluster"]["server"] == api.url
    context = ssl.create_default_context(
        cadata=base64.b64decode(
            doc["clusters"][0]["cluster"]["certificate-authority-data"]
        ).decode()
    )
    context.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    with urllib.request.urlopen(api.url + "/version", context=context) as answer:  # noqa: S310
        assert json.load(answer)["user"] == owner.primary_email


def test_the_csr_asks_the_client_signer_for_the_lifetime_and_is_approved_then_deleted(
    owner_client, org, standin
):
    api = standin()
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    seen = {}
    original = api._create_csr

    def spy(body, peer):
        seen.update(body["spec"])
        return original(body, peer)

    api._create_csr = spy
    response = _issue(owner_client, cluster, {"lifetime_seconds": 900, "access": "admin"})
    assert response.status_code == 201, response.content
    assert seen["signerName"] == "kubernetes.io/kube-apiserver-client"
    assert seen["expirationSeconds"] == 900 and seen["usages"] == ["client auth"]
    cert, _, _ = _client_cert(response.json()["kubeconfig"])
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "autoglue:cluster-admins"
    )
    left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=13) < left <= dt.timedelta(minutes=15)
    methods = [m for m, p in api.calls if p.startswith(CSR_PREFIX)]
    assert methods[:2] == ["POST", "PUT"] and methods[-1] == "DELETE"
    assert api.csrs == {} and len(api.deleted) == 1


def test_the_groups_are_bound_to_cluster_admin_and_view_once(owner_client, org, standin):
    api = standin()
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    assert _issue(owner_client, cluster).status_code == 201
    assert _issue(owner_client, cluster).status_code == 201  # bindings exist: 409, fine
    roles = {b["subjects"][0]["name"]: b["roleRef"]["name"] for b in api.bindings.values()}
    assert roles == {"autoglue:cluster-admins": "cluster-admin", "autoglue:viewers": "view"}
    assert sum(1 for m, p in api.calls if p == CRB_PREFIX) == 4


def test_the_issue_is_audited_without_key_material(owner_client, org, standin):
    api = standin()
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    body = _issue(owner_client, cluster).json()
    entry = AuditEntry.objects.filter(event="secret.kubeconfig").get()
    assert entry.object_id == str(cluster.pk)
    assert entry.metadata["access"] == "view" and entry.metadata["kind"] == "short_lived"
    stored = json.dumps(entry.metadata) + str(entry.object_repr)
    _, cert_pem, key_pem = _client_cert(body["kubeconfig"])
    for secret in (cert_pem, key_pem):
        assert base64.b64encode(secret).decode() not in stored
        assert secret.decode().splitlines()[1] not in stored


def test_an_org_key_gets_a_kubeconfig_naming_the_key(org, standin):
    from rest_framework.test import APIClient

    api = standin()
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    created = account_services.api_key_create_for_org(organization=org)
    client = APIClient()
    client.credentials(HTTP_X_ORG_KEY=created.plain, HTTP_X_ORG_SECRET=created.secret)
    response = _issue(client, cluster)
    assert response.status_code == 201
    assert response.json()["username"] == f"autoglue:org-key:{created.key.pk}"


@pytest.mark.parametrize("role", ["viewer", "member"])
def test_roles_that_cannot_read_kubeconfigs_cannot_get_one(
    bearer_client, org, standin, role, request
):
    api = standin()
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    user = request.getfixturevalue(role)
    response = _issue(bearer_client(user, org), cluster)
    assert response.status_code == 403
    assert api.calls == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"lifetime_seconds": 599}, "lifetime_seconds"),
        ({"lifetime_seconds": 86401}, "lifetime_seconds"),
        ({"lifetime_seconds": "an hour"}, "lifetime_seconds"),
        ({"access": "root"}, "access"),
    ],
)
def test_a_bad_request_is_a_400_naming_the_field(owner_client, org, standin, body, field):
    api = standin()
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    response = _issue(owner_client, cluster, body)
    assert response.status_code == 400
    assert field in response.json()["message"]
    assert api.calls == []


def test_the_longest_lifetime_is_a_setting(owner_client, org, standin, settings):
    settings.KUBECONFIG_MAX_LIFETIME_SECONDS = 1200
    api = standin()
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    assert _issue(owner_client, cluster, {"lifetime_seconds": 1201}).status_code == 400
    assert _issue(owner_client, cluster, {"lifetime_seconds": 1200}).status_code == 201


def test_a_denied_csr_is_a_502_saying_so(owner_client, org, standin):
    api = standin("deny")
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    response = _issue(owner_client, cluster)
    assert response.status_code == 502
    assert response.json()["code"] == "csr_denied"
    assert api.csrs == {}  # cleaned up


def test_a_certificate_outliving_the_asked_lifetime_is_refused(owner_client, org, standin):
    """A signer that ignores expirationSeconds (older than 1.22) would hand out a year-long
    credential: refused as 502 `csr_lifetime_ignored`, no kubeconfig in the answer."""
    api = standin(ignore_expiration=True)
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    response = _issue(owner_client, cluster)
    assert response.status_code == 502, response.content
    assert response.json()["code"] == "csr_lifetime_ignored"
    assert b"BEGIN" not in response.content and b"kubeconfig" not in response.content


@pytest.mark.parametrize("misissue", ["key", "subject"])
def test_a_certificate_for_another_key_or_name_is_refused(owner_client, org, standin, misissue):
    api = standin(misissue=misissue)
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    response = _issue(owner_client, cluster)
    assert response.status_code == 502, response.content
    assert response.json()["code"] == "csr_certificate_mismatch"
    assert b"BEGIN" not in response.content


def test_a_csr_the_signer_fails_is_a_502_saying_so(owner_client, org, standin):
    api = standin("fail")
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    response = _issue(owner_client, cluster)
    assert response.status_code == 502 and response.json()["code"] == "csr_denied"


def test_a_csr_that_never_gets_a_certificate_times_out(owner_client, org, standin, settings):
    settings.KUBECONFIG_CSR_WAIT_SECONDS = 1.0
    api = standin("never")
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    response = _issue(owner_client, cluster)
    assert response.status_code == 504
    assert response.json()["code"] == "csr_timeout"
    assert api.csrs == {}


def test_stored_credentials_the_cluster_refuses_are_a_502(owner_client, org, standin):
    api = standin("forbidden")
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    response = _issue(owner_client, cluster)
    assert response.status_code == 502 and response.json()["code"] == "cluster_api_refused"


def test_a_cluster_whose_api_cannot_be_reached_is_a_502(owner_client, org, standin):
    api = standin()
    api.stop()
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    response = _issue(owner_client, cluster)
    assert response.status_code == 502
    assert response.json()["code"] == "cluster_api_unreachable"


def test_a_server_with_another_ca_is_unreachable_not_trusted(owner_client, org, standin):
    api, other = standin(), standin()
    kubeconfig = yaml.safe_load(api.kubeconfig())
    kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"] = base64.b64encode(
        other.ca.cert.public_bytes(serialization.Encoding.PEM)
    ).decode()
    cluster = ClusterFactory(organization=org, kubeconfig=yaml.safe_dump(kubeconfig))
    response = _issue(owner_client, cluster)
    assert response.status_code == 502 and response.json()["code"] == "cluster_api_unreachable"
    assert api.calls == []


@pytest.mark.parametrize(
    "server",
    [
        "http://127.0.0.1:6443",
        "https://169.254.169.254",
        "https://[fd00:ec2::254]:6443",
        "https://user:pass@127.0.0.1:6443",
        "https://127.0.0.1:6443?x=1",
        "file:///etc/passwd",
        "https://",
    ],
)
def test_a_stored_server_url_we_may_not_reach_is_refused_before_any_call(
    owner_client, org, standin, server
):
    api = standin()
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig(server=server))
    response = _issue(owner_client, cluster)
    assert response.status_code == 409
    assert response.json()["code"] == "kubeconfig_invalid"
    assert api.calls == []


@pytest.mark.parametrize("stored", ["", "not: [yaml", "clusters: 3", "a: b"])
def test_a_missing_or_broken_stored_kubeconfig_is_a_409(owner_client, org, stored):
    cluster = ClusterFactory(organization=org, kubeconfig=stored)
    response = _issue(owner_client, cluster)
    assert response.status_code == 409
    assert response.json()["code"] == "kubeconfig_invalid"


def test_another_organizations_cluster_is_404(owner_client, other_org, standin):
    api = standin()
    cluster = ClusterFactory(organization=other_org, kubeconfig=api.kubeconfig())
    assert _issue(owner_client, cluster).status_code == 404
    assert api.calls == []


def test_the_console_downloads_a_one_hour_kubeconfig_for_the_signed_in_person(org, standin):
    from apps.orgs.tests.admin_support import console_for, staff_of

    api = standin()
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    owner = staff_of(org, "owner", "olga@acme.example")
    response = console_for(owner).post(
        "/admin/clusters/cluster/",
        {"action": "download_short_lived_admin", "_selected_action": [str(cluster.pk)]},
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert "attachment" in response["Content-Disposition"]
    cert, _, _ = _client_cert(response.content.decode())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == owner.primary_email
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == (
        "autoglue:cluster-admins"
    )
    left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    assert dt.timedelta(minutes=58) < left <= dt.timedelta(hours=1)


def test_the_cluster_page_offers_the_one_hour_kubeconfig_first_and_its_button_downloads_one(
    org, other_org, standin
):
    from apps.orgs.tests.admin_support import console_for, staff_of

    api = standin()
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    owner = staff_of(org, "owner", "olga@acme.example")
    console = console_for(owner)
    page = console.get(f"/admin/clusters/cluster/{cluster.pk}/change/").content.decode()
    short = page.index("Download a 1-hour kubeconfig (view)")
    assert short < page.index("Download the long-lived admin kubeconfig")
    response = console.post(f"/admin/clusters/cluster/{cluster.pk}/kubeconfig/1h/view/")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    cert, _, _ = _client_cert(response.content.decode())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == owner.primary_email
    assert (
        console.post(f"/admin/clusters/cluster/{cluster.pk}/kubeconfig/1h/root/").status_code == 404
    )
    theirs = ClusterFactory(organization=other_org, kubeconfig=api.kubeconfig())
    assert (
        console.post(f"/admin/clusters/cluster/{theirs.pk}/kubeconfig/1h/view/").status_code == 404
    )


def test_the_console_shows_why_a_kubeconfig_could_not_be_signed(org, standin):
    from apps.orgs.tests.admin_support import console_for, staff_of

    api = standin("deny")
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    console = console_for(staff_of(org, "owner", "olga@acme.example"))
    response = console.post(
        "/admin/clusters/cluster/",
        {"action": "download_short_lived_view", "_selected_action": [str(cluster.pk)]},
        follow=True,
    )
    assert response.status_code == 200
    assert "denied the signing request" in response.content.decode()


def test_a_console_viewer_gets_no_short_lived_kubeconfig(org, standin):
    from apps.orgs.tests.admin_support import console_for, staff_of

    api = standin()
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    console = console_for(staff_of(org, "viewer", "bob@acme.example"))
    response = console.post(
        "/admin/clusters/cluster/",
        {"action": "download_short_lived_view", "_selected_action": [str(cluster.pk)]},
    )
    assert response.status_code in (200, 302, 403)
    assert "application/yaml" not in response.get("Content-Type", "")
    assert api.calls == []


def test_a_stored_kubeconfig_with_a_bearer_token_signs_too(owner_client, org, standin):
    api = standin()
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig(token=api.token))
    response = _issue(owner_client, cluster)
    assert response.status_code == 201, response.content
    assert api.token not in response.content.decode()  # the stored credential stays stored
    cert, _, _ = _client_cert(response.json()["kubeconfig"])
    cert.verify_directly_issued_by(api.ca.cert)


def test_a_stored_token_the_cluster_does_not_know_is_a_502(owner_client, org, standin):
    api = standin()
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig(token="CANARY-wrong"))
    response = _issue(owner_client, cluster)
    assert response.status_code == 502 and response.json()["code"] == "cluster_api_refused"
    assert "CANARY" not in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_no_database_transaction_is_held_while_the_cluster_signs(owner_client, org, standin):
    """The request waits on the cluster's API for seconds: meanwhile it holds no open
    transaction (no snapshot, no row locks), seen from PostgreSQL itself."""
    from django.db import connection

    params = connection.get_connection_params()
    seen: list[int] = []

    def count_open_transactions() -> None:
        with psycopg.connect(**params, autocommit=True) as observer:
            row = observer.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state LIKE 'idle in transaction%'"
            ).fetchone()
            seen.append(row[0] if row else -1)

    api = standin(on_csr=count_open_transactions)
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    response = _issue(owner_client, cluster)
    assert response.status_code == 201, response.content
    assert seen == [0]
    assert AuditEntry.objects.filter(event="secret.kubeconfig", object_id=str(cluster.pk)).exists()


def test_a_slow_cluster_api_is_given_one_deadline_for_all_calls(
    owner_client, org, standin, settings, monkeypatch
):
    """Each call answers within its own timeout, but together they would take ~6 s: the issue
    stops at the one deadline (wait + one call) with 504 `csr_timeout`."""
    from apps.clusters import kube

    monkeypatch.setattr(kube, "HTTP_TIMEOUT_SECONDS", 1)
    settings.KUBECONFIG_CSR_WAIT_SECONDS = 1.0
    api = standin("never", delay=0.7)
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    started = time.monotonic()
    response = _issue(owner_client, cluster)
    elapsed = time.monotonic() - started
    assert response.status_code == 504, response.content
    assert response.json()["code"] == "csr_timeout"
    assert elapsed < 3.0


def test_a_person_asking_too_often_for_one_cluster_is_429(owner_client, org, standin, settings):
    settings.KUBECONFIG_ISSUE_RATE_LIMIT = "2/h"
    api = standin()
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    assert [_issue(owner_client, cluster).status_code for _ in range(2)] == [201, 201]
    refused = _issue(owner_client, cluster)
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert sum(1 for method, path in api.calls if method == "POST" and path == CSR_PREFIX) == 2
    other = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    assert _issue(owner_client, other).status_code == 201


def _key_client(created):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_X_ORG_KEY=created.plain, HTTP_X_ORG_SECRET=created.secret)
    return client


def test_a_kubeconfig_never_outlives_the_key_that_asked_for_it(org, standin):
    """Certificates cannot be revoked: one asked for by a key expiring in an hour expires
    within that hour, whatever lifetime was asked; a key with less than the shortest lifetime
    left gets none."""
    api = standin()
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    hour_key = account_services.api_key_create_for_org(organization=org, expires_in_hours=1)
    response = _issue(_key_client(hour_key), cluster, {"lifetime_seconds": 86400})
    assert response.status_code == 201, response.content
    cert, _, _ = _client_cert(response.json()["kubeconfig"])
    assert cert.not_valid_after_utc <= hour_key.key.expires_at + dt.timedelta(seconds=5)

    ending = account_services.api_key_create_for_org(organization=org, expires_in_hours=1)
    type(ending.key).objects.filter(pk=ending.key.pk).update(
        expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    )
    account_services.api_key_cache_clear(public_id=ending.key.public_id)
    refused = _issue(_key_client(ending), cluster)
    assert refused.status_code == 400
    assert "lifetime_seconds" in refused.json()["message"]


def test_a_network_limited_key_gets_view_access_but_not_admin(org, standin):
    api = standin()
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    created = account_services.api_key_create_for_org(
        organization=org,
        scope=account_services.KeyScopeRequest(allowed_cidrs=("127.0.0.0/8",)),
    )
    client = _key_client(created)
    refused = _issue(client, cluster, {"access": "admin"})
    assert refused.status_code == 403
    assert refused.json()["code"] == "key_scope_forbidden"
    assert _issue(client, cluster, {"access": "view"}).status_code == 201


def test_a_name_that_resolves_elsewhere_at_connect_time_is_refused(
    owner_client, org, standin, settings, monkeypatch
):
    """DNS rebinding: the server name resolves to an allowed address when it is checked, then
    to loopback (not allowed here) when we connect. The connection is refused after connect,
    before anything is sent: the stand-in, listening on loopback, sees no request."""
    import socket

    from apps.clusters.tests.kube_standin import STANDIN_NAME

    api = standin()
    port = int(api.url.rsplit(":", 1)[1])
    cluster = ClusterFactory(
        organization=org, kubeconfig=api.kubeconfig(f"https://{STANDIN_NAME}:{port}")
    )
    real = socket.getaddrinfo
    answers = iter(["198.51.100.7"])

    def rebinding(host, *args, **kwargs):
        if host == STANDIN_NAME:
            address = next(answers, "127.0.0.1")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    settings.AUTOGLUE_ALLOW_LOOPBACK_TARGETS = False
    response = _issue(owner_client, cluster)
    assert response.status_code == 502, response.content
    assert response.json()["code"] == "cluster_api_unreachable"
    assert api.calls == []


@pytest.mark.parametrize(
    ("role", "extra_subject"),
    [("cluster-admin", None), ("view", {"kind": "User", "name": "mallory"})],
)
def test_an_existing_binding_granting_something_else_is_a_502_and_nothing_is_signed(
    owner_client, org, standin, role, extra_subject
):
    """A ClusterRoleBinding named like ours that binds our viewers group to cluster-admin, or
    binds someone else too, is not ours: 502 `cluster_binding_mismatch`, no CSR made."""
    api = standin()
    subjects = [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "autoglue:viewers"}
    ]
    if extra_subject:
        subjects.append({"apiGroup": "rbac.authorization.k8s.io", **extra_subject})
    api.bindings["autoglue-viewers"] = {
        "metadata": {"name": "autoglue-viewers"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    }
    cluster = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    response = _issue(owner_client, cluster)
    assert response.status_code == 502, response.content
    assert response.json()["code"] == "cluster_binding_mismatch"
    assert not any(method == "POST" and path == CSR_PREFIX for method, path in api.calls)
    entry = AuditEntry.objects.filter(event="secret.kubeconfig", object_id=str(cluster.pk)).get()
    assert entry.metadata["outcome"] == "refused"
    assert entry.metadata["code"] == "cluster_binding_mismatch"


def test_the_bindings_autoglue_creates_are_in_the_audit_entry(owner_client, org, standin):
    api = standin()
    first = ClusterFactory(organization=org, kubeconfig=api.kubeconfig())
    assert _issue(owner_client, first).status_code == 201
    assert _issue(owner_client, first).status_code == 201
    entries = AuditEntry.objects.filter(event="secret.kubeconfig").order_by("seq")
    assert [e.metadata["bindings_created"] for e in entries] == [
        ["autoglue-cluster-admins", "autoglue-viewers"],
        [],
    ]

"""The ten contract routes under /dns (and the plan/settings routes beyond it): shapes,
validation, tenancy, and the cluster attach routes with real domains and record sets. Nothing
here reaches Route 53: the reconciles these writes queue are not run."""

from __future__ import annotations

import pytest

from apps.dns.models import Domain, RecordSet
from apps.dns.tests.factories import DomainFactory, RecordSetFactory
from apps.infrastructure import registry
from apps.infrastructure.tests.factories import CredentialFactory
from apps.jobs.models import JobRun

pytestmark = pytest.mark.django_db

DOMAIN_KEYS = {
    "id",
    "organization_id",
    "domain_name",
    "zone_id",
    "status",
    "last_error",
    "credential_id",
    "created_at",
    "updated_at",
}
RECORD_KEYS = {
    "id",
    "domain_id",
    "name",
    "type",
    "ttl",
    "values",
    "fingerprint",
    "status",
    "last_error",
    "owner",
    "created_at",
    "updated_at",
}


def aws(org, scope_kind="service", scope=None, **fields):
    scope = {"service": "route53"} if scope is None else scope
    return CredentialFactory(
        organization=org,
        scope_kind=scope_kind,
        scope=scope,
        scope_fingerprint=registry.scope_fingerprint(scope),
        **fields,
    )


@pytest.fixture
def domain(org):
    return DomainFactory(organization=org, domain_name="example.com", credential=aws(org))


def test_creating_a_domain_normalizes_its_name_and_queues_a_reconcile(api, org):
    credential = aws(org)
    response = api.post(
        "/api/v1/dns/domains",
        {
            "domain_name": "Bücher.Example.",
            "credential_id": str(credential.pk),
            "zone_id": "/hostedzone/Z0ABC",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == DOMAIN_KEYS
    assert (body["domain_name"], body["zone_id"], body["status"]) == (
        "xn--bcher-kva.example",
        "Z0ABC",
        "pending",
    )
    job = JobRun.objects.get(kind="dns_reconcile")
    assert (job.subject_type, str(job.subject_id), job.status) == ("domain", body["id"], "queued")


@pytest.mark.parametrize(
    ("scope_kind", "scope", "provider", "allowed"),
    [
        ("service", {"service": "route53"}, "aws", True),
        ("provider", {}, "aws", True),
        ("resource", {"arn": "arn:aws:route53:::hostedzone/Z1"}, "aws", True),
        ("service", {"service": "s3"}, "aws", False),
        ("resource", {"arn": "arn:aws:s3:::bucket"}, "aws", False),
    ],
)
def test_a_domain_needs_a_credential_whose_scope_allows_route53(
    api, org, scope_kind, scope, provider, allowed
):
    credential = aws(org, scope_kind=scope_kind, scope=scope, provider=provider)
    response = api.post(
        "/api/v1/dns/domains",
        {"domain_name": "example.com", "credential_id": str(credential.pk)},
        format="json",
    )
    if allowed:
        assert response.status_code == 201
    else:
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_credential"
        assert "route53" in response.json()["message"]


def test_another_organizations_credential_cannot_be_bound(api, other_org):
    response = api.post(
        "/api/v1/dns/domains",
        {"domain_name": "example.com", "credential_id": str(aws(other_org).pk)},
        format="json",
    )
    assert response.status_code == 400 and response.json()["code"] == "invalid_credential"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"domain_name": "a..b", "credential_id": "x"}, "domain_name"),
        ({"domain_name": "example.com", "credential_id": "nope"}, "credential_id"),
        ({"domain_name": 12, "credential_id": "x"}, "domain_name"),
        ({"credential_id": "x"}, "domain_name"),
    ],
)
def test_invalid_domain_input_is_a_400_naming_the_field(api, org, body, field):
    response = api.post("/api/v1/dns/domains", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["message"]


def test_a_duplicate_domain_is_a_409(api, domain):
    response = api.post(
        "/api/v1/dns/domains",
        {"domain_name": "EXAMPLE.com", "credential_id": str(domain.credential_id)},
        format="json",
    )
    assert response.status_code == 409 and response.json()["code"] == "already_exists"


def test_domains_are_listed_and_filtered(api, org, domain, django_assert_max_num_queries):
    DomainFactory(organization=org, domain_name="other.org", status="ready")
    DomainFactory(domain_name="example.net")  # another organization's
    with django_assert_max_num_queries(8):
        body = api.get("/api/v1/dns/domains").json()
    assert {d["domain_name"] for d in body} == {"example.com", "other.org"}
    assert [
        d["domain_name"] for d in api.get("/api/v1/dns/domains?domain_name=Example.com.").json()
    ] == ["example.com"]
    assert [d["domain_name"] for d in api.get("/api/v1/dns/domains?status=ready").json()] == [
        "other.org"
    ]
    assert [d["domain_name"] for d in api.get("/api/v1/dns/domains?q=OTHER").json()] == [
        "other.org"
    ]
    assert api.get("/api/v1/dns/domains?status=bogus").status_code == 400


def test_patching_the_credential_puts_the_domain_back_to_pending(api, org, domain):
    Domain.objects.filter(pk=domain.pk).update(status="failed", last_error="boom")
    other = aws(org, scope_kind="provider", scope={})
    body = api.patch(
        f"/api/v1/dns/domains/{domain.pk}", {"credential_id": str(other.pk)}, format="json"
    ).json()
    assert (body["credential_id"], body["status"], body["last_error"]) == (
        str(other.pk),
        "pending",
        "",
    )


def test_a_domain_with_record_sets_cannot_be_renamed(api, domain):
    RecordSetFactory(domain=domain)
    response = api.patch(
        f"/api/v1/dns/domains/{domain.pk}", {"domain_name": "renamed.com"}, format="json"
    )
    assert response.status_code == 409 and response.json()["code"] == "domain_has_records"


def test_other_organizations_domains_and_records_are_out_of_reach(api, other_org):
    theirs = DomainFactory(organization=other_org)
    record = RecordSetFactory(domain=theirs)
    assert api.get(f"/api/v1/dns/domains/{theirs.pk}").status_code == 404
    assert api.patch(f"/api/v1/dns/domains/{theirs.pk}", {}, format="json").status_code == 404
    assert api.delete(f"/api/v1/dns/domains/{theirs.pk}").status_code == 404
    assert api.get(f"/api/v1/dns/domains/{theirs.pk}/records").status_code == 404
    assert api.get(f"/api/v1/dns/domains/{theirs.pk}/plan").status_code == 404
    response = api.post(
        f"/api/v1/dns/domains/{theirs.pk}/records", {"name": "x", "type": "A"}, format="json"
    )
    assert response.status_code == 404
    assert api.get(f"/api/v1/dns/records/{record.pk}").status_code == 404
    assert (
        api.patch(f"/api/v1/dns/records/{record.pk}", {"ttl": 5}, format="json").status_code == 404
    )
    assert api.delete(f"/api/v1/dns/records/{record.pk}").status_code == 404
    assert Domain.objects.filter(pk=theirs.pk).exists()
    assert RecordSet.objects.get(pk=record.pk).ttl == 300


def test_a_viewer_reads_but_cannot_write(client_for, viewer, org, domain):
    client = client_for(viewer, org)
    assert client.get(f"/api/v1/dns/domains/{domain.pk}/records").status_code == 200
    response = client.post(
        f"/api/v1/dns/domains/{domain.pk}/records",
        {"name": "x", "type": "A", "values": ["203.0.113.1"]},
        format="json",
    )
    assert response.status_code == 403
    assert (
        client.patch("/api/v1/dns/settings", {"require_plan": True}, format="json").status_code
        == 403
    )


def test_a_record_set_is_created_in_the_contracts_shape(api, domain):
    response = api.post(
        f"/api/v1/dns/domains/{domain.pk}/records",
        {"name": "API.example.com.", "type": "a", "values": ["203.0.113.7"]},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == RECORD_KEYS - {"ttl"}  # unset TTL is left out, as the original
    # The name as sent (issue 21), stored relative.
    assert (body["name"], body["type"], body["status"], body["owner"]) == (
        "API.example.com.",
        "A",
        "pending",
        "autoglue",
    )
    assert len(body["fingerprint"]) == 64
    assert RecordSet.objects.get(pk=body["id"]).name == "api"


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"name": "x", "type": "PTR", "values": ["a"]}, "validation_error", "type"),
        ({"name": "x", "type": "A", "values": ["nope"]}, "validation_error", "values[0]"),
        (
            {"name": "x", "type": "A", "ttl": 0, "values": ["203.0.113.1"]},
            "validation_error",
            "ttl",
        ),
        (
            {"name": "x", "type": "A", "ttl": 86401, "values": ["203.0.113.1"]},
            "validation_error",
            "ttl",
        ),
        (
            {"name": "other.org.", "type": "A", "values": ["203.0.113.1"]},
            "validation_error",
            "name",
        ),
        ({"name": "@", "type": "CNAME", "values": ["a.example.net"]}, "validation_error", "type"),
        ({"name": "x", "type": "A", "values": "203.0.113.1"}, "validation_error", "values"),
    ],
)
def test_invalid_record_sets_are_refused_naming_the_field(api, domain, body, code, field):
    response = api.post(f"/api/v1/dns/domains/{domain.pk}/records", body, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == code
    assert field in response.json()["message"]


def test_a_cname_is_alone_at_its_name_and_duplicates_are_409(api, domain):
    url = f"/api/v1/dns/domains/{domain.pk}/records"
    assert (
        api.post(
            url, {"name": "www", "type": "A", "values": ["203.0.113.1"]}, format="json"
        ).status_code
        == 201
    )
    response = api.post(
        url, {"name": "www", "type": "CNAME", "values": ["x.example.net"]}, format="json"
    )
    assert response.status_code == 409 and response.json()["code"] == "cname_conflict"
    response = api.post(
        url, {"name": "WWW.example.com", "type": "A", "values": ["203.0.113.2"]}, format="json"
    )
    assert response.status_code == 409 and response.json()["code"] == "already_exists"


def test_patching_a_record_set_puts_it_back_to_pending_with_a_new_fingerprint(api, domain):
    record = RecordSetFactory(domain=domain, status="failed", last_error="old")
    body = api.patch(
        f"/api/v1/dns/records/{record.pk}", {"values": ["203.0.113.99"], "ttl": 60}, format="json"
    ).json()
    assert (body["status"], body["last_error"], body["ttl"], body["values"]) == (
        "pending",
        "",
        60,
        ["203.0.113.99"],
    )
    assert body["fingerprint"] != record.fingerprint
    assert (
        api.patch(f"/api/v1/dns/records/{record.pk}", {"type": "AAAA"}, format="json").status_code
        == 400
    )  # the A value is not an IPv6 address


def test_records_are_listed_with_normalized_filters(api, domain, django_assert_max_num_queries):
    for index in range(5):
        RecordSetFactory(domain=domain, name=f"n{index}")
    RecordSetFactory(domain=domain, name="@", type="TXT", values=["x"], status="ready")
    with django_assert_max_num_queries(8):
        body = api.get(f"/api/v1/dns/domains/{domain.pk}/records").json()
    assert len(body) == 6
    url = f"/api/v1/dns/domains/{domain.pk}/records"
    assert [r["name"] for r in api.get(url + "?name=N1.example.com").json()] == ["n1"]
    assert [r["name"] for r in api.get(url + "?name=example.com.").json()] == ["@"]
    assert [r["type"] for r in api.get(url + "?type=txt").json()] == ["TXT"]
    assert [r["name"] for r in api.get(url + "?status=ready").json()] == ["@"]


def test_deleting_a_record_set_queues_a_reconcile_and_is_404_after(api, domain):
    record = RecordSetFactory(domain=domain)
    assert api.delete(f"/api/v1/dns/records/{record.pk}").status_code == 204
    assert api.get(f"/api/v1/dns/records/{record.pk}").status_code == 404
    assert JobRun.objects.filter(kind="dns_reconcile", subject_id=domain.pk).exists()


def test_malformed_ids_are_400_not_500(api, domain):
    assert api.get("/api/v1/dns/domains/not-a-uuid").status_code == 400
    assert api.get("/api/v1/dns/records/not-a-uuid").status_code == 400
    assert api.get("/api/v1/dns/domains/not-a-uuid/records").status_code == 400


def test_a_plan_of_a_domain_not_yet_checked_is_a_409(api, domain):
    response = api.get(f"/api/v1/dns/domains/{domain.pk}/plan")
    assert response.status_code == 409 and response.json()["code"] == "domain_not_ready"


def test_settings_default_to_applying_automatically_and_only_admins_change_them(
    api, org, client_for, owner
):
    assert api.get("/api/v1/dns/settings").json() == {
        "organization_id": str(org.pk),
        "require_plan": False,
    }
    response = api.patch("/api/v1/dns/settings", {"require_plan": True}, format="json")
    assert response.status_code == 403
    client = client_for(owner, org)
    response = client.patch("/api/v1/dns/settings", {"require_plan": "x"}, format="json")
    assert response.status_code == 400
    body = client.patch("/api/v1/dns/settings", {"require_plan": True}, format="json").json()
    assert body["require_plan"] is True
    assert client.patch("/api/v1/dns/settings", {}, format="json").json()["require_plan"] is True
    assert api.get("/api/v1/dns/settings").json()["require_plan"] is True


def test_clusters_attach_a_real_domain_and_record_set_and_show_the_control_plane_fqdn(api, org):
    from apps.clusters.tests.factories import ClusterFactory

    credential = aws(org)
    domain_id = api.post(
        "/api/v1/dns/domains",
        {"domain_name": "k8s.example.com", "credential_id": str(credential.pk)},
        format="json",
    ).json()["id"]
    record_id = api.post(
        f"/api/v1/dns/domains/{domain_id}/records",
        {"name": "cp", "type": "A", "values": ["203.0.113.7"]},
        format="json",
    ).json()["id"]
    cluster = ClusterFactory(organization=org)
    body = api.post(
        f"/api/v1/clusters/{cluster.pk}/captain-domain", {"domain_id": domain_id}, format="json"
    ).json()
    assert body["captain_domain"]["domain_name"] == "k8s.example.com"
    body = api.post(
        f"/api/v1/clusters/{cluster.pk}/control-plane-record-set",
        {"record_set_id": record_id},
        format="json",
    ).json()
    assert body["control_plane_fqdn"] == "cp.k8s.example.com"
    assert body["control_plane_record_set"]["id"] == record_id

    api.delete(f"/api/v1/dns/records/{record_id}")
    body = api.get(f"/api/v1/clusters/{cluster.pk}").json()
    assert "control_plane_record_set" not in body and body["status"] == "pre_pending"


def test_a_cname_that_points_at_itself_is_a_400_on_create_and_on_rename(api, domain):
    url = f"/api/v1/dns/domains/{domain.pk}/records"
    response = api.post(
        url, {"name": "loop", "type": "CNAME", "values": ["loop.example.com."]}, format="json"
    )
    assert response.status_code == 400, response.json()
    assert "points at itself" in response.json()["message"]
    created = api.post(
        url, {"name": "a", "type": "CNAME", "values": ["b.example.com"]}, format="json"
    ).json()
    response = api.patch(f"/api/v1/dns/records/{created['id']}", {"name": "b"}, format="json")
    assert response.status_code == 400, response.json()
    assert "points at itself" in response.json()["message"]


def test_a_caa_value_with_an_embedded_newline_is_a_400(api, domain):
    response = api.post(
        f"/api/v1/dns/domains/{domain.pk}/records",
        {"name": "@", "type": "CAA", "values": ['0 issue "ca.example"\n0 iodef "x"']},
        format="json",
    )
    assert response.status_code == 400, response.json()
    assert response.json()["message"].startswith("values[0]:")


def test_a_name_given_as_an_fqdn_is_answered_as_given_and_stored_relative(api, domain):
    url = f"/api/v1/dns/domains/{domain.pk}/records"
    created = api.post(
        url, {"name": "edge.example.com", "type": "A", "values": ["203.0.113.7"]}, format="json"
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["name"] == "edge.example.com"
    record = RecordSet.objects.get(pk=body["id"])
    assert record.name == "edge"  # one stored, reconciled form
    assert api.get(f"/api/v1/dns/records/{record.pk}").json()["name"] == "edge.example.com"
    assert [r["name"] for r in api.get(url).json()] == ["edge.example.com"]
    assert [r["name"] for r in api.get(url + "?name=edge").json()] == ["edge.example.com"]

    # A PATCH without a name keeps the form given; one with a name answers the new form.
    patched = api.patch(f"/api/v1/dns/records/{record.pk}", {"ttl": 60}, format="json").json()
    assert patched["name"] == "edge.example.com"
    patched = api.patch(
        f"/api/v1/dns/records/{record.pk}", {"name": "Edge2.example.com."}, format="json"
    ).json()
    assert patched["name"] == "Edge2.example.com."
    record.refresh_from_db()
    assert record.name == "edge2"

    # The same name in another form is still the same record set.
    clash = api.post(url, {"name": "edge2", "type": "A", "values": ["203.0.113.8"]}, format="json")
    assert clash.status_code == 409


def test_an_apex_given_as_the_domain_is_answered_as_given(api, domain):
    body = api.post(
        f"/api/v1/dns/domains/{domain.pk}/records",
        {"name": "example.com", "type": "TXT", "values": ["hello"]},
        format="json",
    ).json()
    assert body["name"] == "example.com"
    assert RecordSet.objects.get(pk=body["id"]).name == "@"

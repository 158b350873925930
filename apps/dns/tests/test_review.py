"""Defects found in the outside review of the DNS app (issue 10), each pinned by a test: a
parent domain's reconcile must leave a sub-domain's records alone, values must reach Route 53
in the form Route 53 reads, names Autoglue derives must be valid DNS names, odd input is a 400
and never a 500, and another organization's plans are out of reach."""

from __future__ import annotations

import json

import psycopg
import pytest
from django.db import connection

from apps.core.api.errors import APIError
from apps.dns import services
from apps.dns.clients import RRset
from apps.dns.models import DNSPlan, Domain, RecordSet
from apps.dns.names import wire_value
from apps.dns.reconcile import Wanted, build_batches, compute_plan
from apps.dns.tests.conftest import run_reconciles
from apps.dns.tests.factories import DomainFactory
from apps.dns.tests.test_api import aws
from apps.jobs.models import JobLog, JobRun

pytestmark = pytest.mark.django_db

ORG = "11111111-1111-1111-1111-111111111111"
KEY = b"test-marker-key-0123456789abcdef"


def _create_domain(api, credential, **body):
    response = api.post(
        "/api/v1/dns/domains", {"credential_id": str(credential.pk), **body}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert run_reconciles()[-1] == "succeeded"
    return Domain.objects.get(pk=response.json()["id"])


def _add_record(api, domain, **body):
    response = api.post(f"/api/v1/dns/domains/{domain.pk}/records", body, format="json")
    assert response.status_code == 201, response.json()
    return RecordSet.objects.get(pk=response.json()["id"])


# --- (4) ownership: two domains of one organization in one hosted zone -----------------------


def test_reconciling_a_parent_domain_leaves_a_sub_domains_records_in_the_same_zone_alone(
    api, route53, route53_credential
):
    zone = route53.create_zone("example.com")
    parent = _create_domain(api, route53_credential, domain_name="example.com")
    child = _create_domain(api, route53_credential, domain_name="dev.example.com", zone_id=zone)
    _add_record(api, parent, name="www", type="A", values=["203.0.113.1"])
    api_record = _add_record(api, child, name="api", type="A", values=["203.0.113.2"])
    run_reconciles()
    assert route53.values(zone, "api.dev.example.com", "A") == ["203.0.113.2"]

    # Any later reconcile of the parent (a change there, or the drift schedule).
    route53.proxy.reset_counts()
    services.domain_reconcile_enqueue(domain=parent)
    assert run_reconciles() == ["succeeded"]

    assert route53.values(zone, "api.dev.example.com", "A") == ["203.0.113.2"]
    assert route53.values(zone, "_autoglue.api.dev.example.com", "TXT") is not None
    assert route53.proxy.calls["ChangeResourceRecordSets"] == 0
    assert RecordSet.objects.get(pk=api_record.pk).status == RecordSet.Status.READY


def test_a_parents_plan_shows_no_change_to_a_sub_domains_records(api, route53, route53_credential):
    zone = route53.create_zone("example.com")
    parent = _create_domain(api, route53_credential, domain_name="example.com")
    child = _create_domain(api, route53_credential, domain_name="dev.example.com", zone_id=zone)
    _add_record(api, child, name="api", type="A", values=["203.0.113.2"])
    run_reconciles()

    plan = api.get(f"/api/v1/dns/domains/{parent.pk}/plan").json()
    assert plan["changes"] == []
    assert plan["summary"]["delete"] == 0


# --- (4) values and names as Route 53 reads them ---------------------------------------------


def test_txt_bytes_outside_printable_ascii_are_sent_as_route53s_octal_escapes():
    # Route 53 reads `\ddd` in a TXT value as an octal byte: "é" is UTF-8 C3 A9 = \303\251.
    assert wire_value("TXT", "café") == '"caf\\303\\251"'
    assert wire_value("TXT", "tab\there") == '"tab\\011here"'
    # Already quoted: escapes given stay, raw bytes are escaped the same way.
    assert wire_value("TXT", '"café" "a\\"b"') == '"caf\\303\\251" "a\\"b"'


def test_internationalized_host_names_in_values_are_sent_in_their_idna_form():
    assert wire_value("CNAME", "Bücher.example.") == "xn--bcher-kva.example"
    assert wire_value("MX", "10 bücher.example") == "10 xn--bcher-kva.example"
    assert wire_value("SRV", "0 5 443 bücher.example") == "0 5 443 xn--bcher-kva.example"


def _valid_dns_name(name: str) -> bool:
    return len(name) <= 253 and all(0 < len(label) <= 63 for label in name.split("."))


def test_markers_and_guards_of_a_long_name_are_valid_dns_names_or_left_out():
    # A 60-character first label is a valid record name; `extdns-cname-<label>` would not be.
    name = "a" * 60 + ".example.com"
    wanted = [Wanted("r1", name, "CNAME", None, ("target.example.net",), "f" * 64)]
    plan = compute_plan(
        zone_rrsets=[],
        wanted=wanted,
        org_id=ORG,
        domain_name="example.com",
        zone_name="example.com",
        marker_key=KEY,
    )
    names = [change.rrset.name for change in plan.changes]
    assert name in names and f"_autoglue.{name}" in names
    assert all(_valid_dns_name(n) for n in names), names


def test_a_record_name_whose_marker_would_be_too_long_is_a_400(api, org):
    domain = DomainFactory(organization=org, domain_name="example.com", credential=aws(org))
    # 239 + 1 + 11 = 251 characters: a valid name, but `_autoglue.` makes it 261.
    name = ".".join(["a" * 58] * 4) + ".abc"
    response = api.post(
        f"/api/v1/dns/domains/{domain.pk}/records",
        {"name": name, "type": "A", "values": ["203.0.113.1"]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith("name:")


def test_a_record_set_too_big_for_any_route53_batch_is_a_400(api, org):
    domain = DomainFactory(organization=org, domain_name="example.com", credential=aws(org))
    values = [f"{i:04d}" + "x" * 1000 for i in range(40)]  # 40,160 characters of values
    response = api.post(
        f"/api/v1/dns/domains/{domain.pk}/records",
        {"name": "big", "type": "TXT", "values": values},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith("values:")
    # What the API accepts always fits one batch (as a DELETE and a CREATE at worst).
    ok = values[:30]
    assert (
        api.post(
            f"/api/v1/dns/domains/{domain.pk}/records",
            {"name": "big", "type": "TXT", "values": ok},
            format="json",
        ).status_code
        == 201
    )
    record = RecordSet.objects.get(domain=domain, name="big")
    wanted = [
        Wanted(
            str(record.pk),
            "big.example.com",
            "TXT",
            None,
            tuple(wire_value("TXT", v) for v in ok),
            "f" * 64,
        )
    ]
    plan = compute_plan(
        zone_rrsets=[],
        wanted=wanted,
        org_id=ORG,
        domain_name="example.com",
        zone_name="example.com",
        marker_key=KEY,
    )
    for batch in build_batches(plan.groups):
        assert sum(len(v) for c in batch for v in c.rrset.values) <= 32000


# --- (3) no input answers 500 ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("rtype", "value"),
    [
        ("SRV", "1 2 ³ target.example.net"),  # a superscript digit
        ("CAA", "²55 issue letsencrypt.org"),
        ("MX", "١٠ mail.example.net"),  # Arabic-Indic digits
        ("AAAA", "fe80::1%eth0"),  # a scope id Route 53 refuses
    ],
)
def test_values_with_non_ascii_digits_or_a_scope_id_are_a_400_not_a_500(api, org, rtype, value):
    domain = DomainFactory(organization=org, domain_name="example.com", credential=aws(org))
    response = api.post(
        f"/api/v1/dns/domains/{domain.pk}/records",
        json.dumps({"name": "x", "type": rtype, "values": [value]}),
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["message"].startswith("values[0]:")


# --- (1) tenancy and (4) purge ---------------------------------------------------------------


def test_another_organizations_plan_cannot_be_read_or_applied(api, other_org):
    theirs = DomainFactory(organization=other_org, status=Domain.Status.READY)
    plan = DNSPlan.objects.create(
        organization=other_org, domain=theirs, zone_digest="z", desired_digest="d"
    )
    assert api.get(f"/api/v1/dns/plans/{plan.pk}").status_code == 404
    assert api.post(f"/api/v1/dns/plans/{plan.pk}/apply").status_code == 404
    plan.refresh_from_db()
    assert plan.status == DNSPlan.Status.OPEN and plan.job_id is None


def test_moving_a_domain_to_a_new_zone_and_credential_purges_the_old_zone_with_the_old_key(
    api, org
):
    old_key, new_key = aws(org), aws(org, scope_kind="provider", scope={})
    domain = DomainFactory(
        organization=org, domain_name="example.com", credential=old_key, zone_id="ZOLD"
    )
    response = api.patch(
        f"/api/v1/dns/domains/{domain.pk}",
        {"credential_id": str(new_key.pk), "zone_id": "ZNEW"},
        format="json",
    )
    assert response.status_code == 200
    purge = JobRun.objects.get(kind=services.PURGE_KIND, subject_id=domain.pk)
    assert purge.payload["zone_id"] == "ZOLD"
    assert purge.payload["credential_id"] == str(old_key.pk)


# --- (2) secrets ------------------------------------------------------------------------------


def test_a_route53_error_that_echoes_the_credential_never_shows_it_anywhere(
    api, route53, route53_credential
):
    zone = route53.create_zone("example.com")
    secret = json.loads(route53_credential.secret)
    # A Route 53-compatible endpoint (AWS_ENDPOINT_URL) that repeats the request's signing
    # details in its error text.
    route53.proxy.fail(
        "GetHostedZone",
        "AccessDenied",
        f"key {secret['access_key_id']} with secret {secret['secret_access_key']} denied",
    )
    response = api.post(
        "/api/v1/dns/domains",
        {
            "domain_name": "example.com",
            "credential_id": str(route53_credential.pk),
            "zone_id": zone,
        },
        format="json",
    )
    assert run_reconciles() == ["failed"]
    body = api.get(f"/api/v1/dns/domains/{response.json()['id']}").json()
    assert body["status"] == "failed" and "AccessDenied" in body["last_error"]
    job = JobRun.objects.filter(kind=services.RECONCILE_KIND).latest("queued_at")
    seen = json.dumps(body) + json.dumps(
        [str(v) for v in JobRun.objects.filter(pk=job.pk).values().first().values()]
    )
    seen += " ".join(JobLog.objects.filter(job=job).values_list("chunk", flat=True))
    assert secret["access_key_id"] not in seen
    assert secret["secret_access_key"] not in seen


@pytest.mark.parametrize("query", ["name=%00", "type=%00", "status=%00"])
def test_an_invalid_record_filter_is_a_400_rather_than_the_unfiltered_list(api, org, query):
    domain = DomainFactory(organization=org, domain_name="example.com", credential=aws(org))
    _add_record(api, domain, name="www", type="A", values=["203.0.113.1"])
    response = api.get(f"/api/v1/dns/domains/{domain.pk}/records?{query}")
    assert response.status_code == 400
    assert response.json()["message"].startswith(query.split("=")[0] + ":")


# --- (4) foreign records at the names Autoglue writes next to a record -----------------------


def _plan_for(zone, name="api.example.com"):
    return compute_plan(
        zone_rrsets=zone,
        wanted=[Wanted("r1", name, "A", None, ("203.0.113.1",), "f" * 64)],
        org_id=ORG,
        domain_name="example.com",
        zone_name="example.com",
        marker_key=KEY,
    )


def test_a_foreign_txt_record_at_a_guards_name_is_a_conflict_not_overwritten():
    foreign = RRset("extdns-a-api.example.com", "TXT", 300, ('"my own note"',))
    plan = _plan_for([foreign])
    assert [c.reason.split(":")[0] for c in plan.conflicts] == ["ownership_conflict"]
    assert "extdns-a-api.example.com" in plan.conflicts[0].reason
    assert plan.changes == []


def test_foreign_values_at_a_markers_name_are_a_conflict_never_merged_or_overwritten():
    # (Issue 19: a value merged into a marker set could later be read as a marker.)
    foreign = RRset("_autoglue.api.example.com", "TXT", 300, ('"hello"',))
    plan = _plan_for([foreign])
    assert plan.changes == []
    assert "holds values Autoglue did not write" in plan.conflicts[0].reason


def test_patching_an_empty_zone_id_onto_a_domain_in_its_own_zone_changes_nothing_in_route53(
    api, org
):
    # What a client that sends every field (zone_id unset = "") does on any update.
    credential = aws(org)
    domain = DomainFactory(
        organization=org,
        domain_name="example.com",
        credential=credential,
        zone_id="ZFOUND",
        zone_name="example.com",
        status=Domain.Status.READY,
    )
    response = api.patch(
        f"/api/v1/dns/domains/{domain.pk}",
        {"domain_name": "example.com", "credential_id": str(credential.pk), "zone_id": ""},
        format="json",
    )
    assert response.status_code == 200
    assert (response.json()["zone_id"], response.json()["status"]) == ("ZFOUND", "ready")
    assert not JobRun.objects.filter(kind=services.PURGE_KIND).exists()


def test_an_external_dns_claim_in_its_default_type_prefixed_format_is_a_conflict():
    heritage = '"heritage=external-dns,external-dns/owner=k8s-prod,external-dns/resource=ingress/a"'
    claim = RRset("a-api.example.com", "TXT", 300, (heritage,))
    plan = _plan_for([claim])
    assert len(plan.conflicts) == 1 and "external-dns (owner k8s-prod)" in plan.conflicts[0].reason
    assert plan.changes == []


def test_a_purge_of_a_zone_its_credential_cannot_reach_fails_without_waiting_on_that_zone(
    api, org, route53, settings
):
    # A domain given another account's zone id (never checked: its reconcile failed), deleted.
    settings.DNS_ZONE_LOCK_WAIT_SECONDS = 1
    domain = DomainFactory(
        organization=org, domain_name="example.com", credential=aws(org), zone_id="ZTHEIRS"
    )
    assert api.delete(f"/api/v1/dns/domains/{domain.pk}").status_code == 204
    route53.proxy.fail("GetHostedZone", "AccessDenied", "not authorized for hostedzone/ZTHEIRS")
    # The zone's owner is reconciling it right now (its lock held by another connection).
    key = services._zone_lock_key("ZTHEIRS")
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"] or None,
        port=db["PORT"] or None,
        user=db["USER"],
        password=db["PASSWORD"],
        dbname=db["NAME"],
        autocommit=True,
    ) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [key])
        assert run_reconciles() == ["failed"]
    job = JobRun.objects.get(kind=services.PURGE_KIND)
    log = " ".join(JobLog.objects.filter(job=job).values_list("chunk", flat=True))
    assert "AccessDenied" in job.error
    assert "waiting" not in log and "busy" not in job.error
    assert route53.proxy.calls["ListResourceRecordSets"] == 0


def test_a_txt_value_too_long_for_route53_once_escaped_is_a_400(api, org):
    domain = DomainFactory(organization=org, domain_name="example.com", credential=aws(org))
    # 1,000 characters, 3,000 UTF-8 bytes, 12,000 characters as octal escapes.
    response = api.post(
        f"/api/v1/dns/domains/{domain.pk}/records",
        {"name": "cjk", "type": "TXT", "values": ["字" * 1000]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["message"].startswith("values[0]:")
    ok = api.post(
        f"/api/v1/dns/domains/{domain.pk}/records",
        {"name": "cjk", "type": "TXT", "values": ["字" * 300]},
        format="json",
    )
    assert ok.status_code == 201


# --- (3) a write racing a delete is a 404, not a 500 ------------------------------------------


def test_writes_that_lose_a_race_with_a_delete_are_404s_not_500s(org):
    # The view found the row; a concurrent DELETE committed before the service locked it.
    domain = DomainFactory(organization=org, domain_name="example.com", credential=aws(org))
    record = RecordSet.objects.create(
        organization=org, domain=domain, name="www", type="A", values=["203.0.113.1"]
    )
    plan = DNSPlan.objects.create(
        organization=org, domain=domain, zone_digest="z", desired_digest="d"
    )
    RecordSet.objects.filter(pk=record.pk).delete()
    with pytest.raises(APIError) as caught:
        services.record_set_update(record_set=record, changes={"ttl": 60})
    assert (caught.value.status_code, caught.value.error_code) == (404, "not_found")

    DNSPlan.objects.filter(pk=plan.pk).delete()
    with pytest.raises(APIError) as caught:
        services.dns_plan_apply(plan=plan)
    assert (caught.value.status_code, caught.value.error_code) == (404, "plan_not_found")

    Domain.objects.filter(pk=domain.pk).delete()
    for call in (
        lambda: services.domain_update(domain=domain, changes={"status": "pending"}),
        lambda: services.record_set_create(
            domain=domain, name="api", type="A", values=["203.0.113.2"]
        ),
    ):
        with pytest.raises(APIError) as caught:
            call()
        assert (caught.value.status_code, caught.value.error_code) == (404, "not_found")

"""The reconciler against moto in server mode over HTTP (through a counting proxy): zones found,
records created, updated and deleted with their markers, foreign and external-dns records left
alone, throttling ridden out, plans applied exactly, domains purged."""

from __future__ import annotations

import pytest

from apps.clusters.models import Cluster
from apps.clusters.tests.factories import ClusterFactory
from apps.dns import services
from apps.dns.models import DNSPlan, Domain, RecordSet
from apps.dns.reconcile import marker_mac
from apps.dns.tests.conftest import run_reconciles
from apps.jobs.models import JobLog, JobRun

pytestmark = pytest.mark.django_db

POISON = (
    '"heritage=external-dns,external-dns/owner=autoglue-lock,external-dns/resource=manual/autoglue"'
)


@pytest.fixture
def domain(ready_domain):
    return ready_domain


def add_record(api, domain, **body):
    response = api.post(f"/api/v1/dns/domains/{domain.pk}/records", body, format="json")
    assert response.status_code == 201, response.json()
    return RecordSet.objects.get(pk=response.json()["id"])


def test_a_domain_without_a_hosted_zone_fails_with_a_readable_error(
    api, route53, route53_credential
):
    response = api.post(
        "/api/v1/dns/domains",
        {"domain_name": "nowhere.example.org", "credential_id": str(route53_credential.pk)},
        format="json",
    )
    assert run_reconciles() == ["failed"]
    body = api.get(f"/api/v1/dns/domains/{response.json()['id']}").json()
    assert body["status"] == "failed"
    assert "no public hosted zone named nowhere.example.org" in body["last_error"]


def test_requests_are_signed_only_with_the_bound_credentials_key(domain, route53, api, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAAMBIENT000000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "ambient")
    add_record(api, domain, name="api", type="A", values=["203.0.113.10"])
    run_reconciles()
    assert route53.proxy.access_keys == {"AKIACANARY0000000000"}


def test_the_route53_only_endpoint_override_is_honoured(domain, route53, api, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL_ROUTE_53", route53.proxy.url)
    add_record(api, domain, name="api", type="A", values=["203.0.113.10"])
    assert run_reconciles() == ["succeeded"]


def test_a_record_set_is_created_with_its_marker_and_external_dns_guards(
    domain, route53, zone, api, org
):
    record = add_record(
        api, domain, name="api.example.com", type="A", ttl=60, values=["203.0.113.10"]
    )
    assert record.name == "api"
    assert run_reconciles() == ["succeeded"]
    zone_now = route53.rrsets(zone)
    assert [r["Value"] for r in zone_now[("api.example.com", "A")]["ResourceRecords"]] == [
        "203.0.113.10"
    ]
    assert zone_now[("api.example.com", "A")]["TTL"] == 60
    marker = route53.values(zone, "_autoglue.api.example.com", "TXT")
    mac = marker_mac(
        services.dns_marker_key(organization_id=org.pk),
        org_id=str(org.pk),
        record_id=str(record.pk),
        rtype="A",
        fqdn="api.example.com",
    )
    assert marker == [
        f'"v=ag1 org={org.pk} rec={record.pk} fp={record.fingerprint[:16]} type=A mac={mac}"'
    ]
    assert route53.values(zone, "extdns-api.example.com", "TXT") == [POISON]
    assert route53.values(zone, "extdns-a-api.example.com", "TXT") == [POISON]
    # The apex guard would lie outside the zone, so none is written for it.
    body = api.get(f"/api/v1/dns/records/{record.pk}").json()
    assert (body["status"], body["owner"], body["last_error"]) == ("ready", "autoglue", "")
    assert route53.proxy.calls["ChangeResourceRecordSets"] == 1


def test_a_patch_updates_route53_and_a_run_with_nothing_to_do_makes_no_change_call(
    domain, route53, zone, api
):
    record = add_record(api, domain, name="api", type="TXT", values=["hello world"])
    run_reconciles()
    assert route53.values(zone, "api.example.com", "TXT") == ['"hello world"']

    response = api.patch(
        f"/api/v1/dns/records/{record.pk}", {"values": ["v=spf1 -all", "x" * 300]}, format="json"
    )
    assert response.json()["status"] == "pending"
    run_reconciles()
    assert sorted(route53.values(zone, "api.example.com", "TXT")) == sorted(
        ['"v=spf1 -all"', '"' + "x" * 255 + '" "' + "x" * 45 + '"']
    )
    assert api.get(f"/api/v1/dns/records/{record.pk}").json()["status"] == "ready"

    route53.proxy.reset_counts()
    services.domain_reconcile_enqueue(domain=domain)
    assert run_reconciles() == ["succeeded"]
    assert route53.proxy.calls["ChangeResourceRecordSets"] == 0
    assert route53.proxy.calls["ListResourceRecordSets"] == 1


def test_deleting_a_record_set_removes_it_and_its_markers_but_nothing_else(
    domain, route53, zone, api
):
    keep = add_record(api, domain, name="keep", type="A", values=["203.0.113.1"])
    gone = add_record(api, domain, name="gone", type="CNAME", values=["target.example.net"])
    route53.put(zone, "foreign.example.com", "A", ["198.51.100.7"])
    run_reconciles()
    assert route53.values(zone, "gone.example.com", "CNAME") == ["target.example.net"]

    assert api.delete(f"/api/v1/dns/records/{gone.pk}").status_code == 204
    assert api.get(f"/api/v1/dns/records/{gone.pk}").status_code == 404
    assert run_reconciles() == ["succeeded"]
    names = set(route53.rrsets(zone))
    assert not {n for n in names if "gone" in n[0]}
    assert ("keep.example.com", "A") in names and ("_autoglue.keep.example.com", "TXT") in names
    assert route53.values(zone, "foreign.example.com", "A") == ["198.51.100.7"]
    assert RecordSet.objects.get(pk=keep.pk).status == "ready"


def test_a_foreign_record_is_never_touched_and_the_conflict_is_reported(domain, route53, zone, api):
    route53.put(zone, "www.example.com", "A", ["198.51.100.7"])
    record = add_record(api, domain, name="www", type="A", values=["203.0.113.5"])
    assert run_reconciles() == ["succeeded"]
    assert route53.values(zone, "www.example.com", "A") == ["198.51.100.7"]
    assert route53.values(zone, "_autoglue.www.example.com", "TXT") is None
    body = api.get(f"/api/v1/dns/records/{record.pk}").json()
    assert (body["status"], body["owner"]) == ("failed", "external")
    assert "already exists in Route 53 and was not created by Autoglue" in body["last_error"]

    # Deleting our record set does not delete what was never ours.
    api.delete(f"/api/v1/dns/records/{record.pk}")
    run_reconciles()
    assert route53.values(zone, "www.example.com", "A") == ["198.51.100.7"]


def test_an_external_dns_claim_is_refused(domain, route53, zone, api):
    route53.put(
        zone,
        "extdns-app.example.com",
        "TXT",
        ['"heritage=external-dns,external-dns/owner=k8s-prod,external-dns/resource=ingress/x"'],
    )
    record = add_record(api, domain, name="app", type="A", values=["203.0.113.5"])
    run_reconciles()
    assert route53.values(zone, "app.example.com", "A") is None
    record.refresh_from_db()
    assert (record.status, record.owner) == ("failed", "external")
    assert "external-dns (owner k8s-prod) claims app.example.com" in record.last_error


def test_records_the_original_owned_stay_autoglues(domain, route53, zone, api, org):
    record = add_record(api, domain, name="legacy", type="A", values=["203.0.113.9"])
    # What the original left in the zone for this record set: no `type=` in its marker.
    route53.put(zone, "legacy.example.com", "A", ["192.0.2.1"])
    route53.put(
        zone,
        "_autoglue.legacy.example.com",
        "TXT",
        [f'"v=ag1 org={org.pk} rec={record.pk} fp=0123456789abcdef"'],
    )
    route53.put(zone, "extdns-legacy.example.com", "TXT", [POISON])
    route53.put(zone, "extdns-a-legacy.example.com", "TXT", [POISON])
    run_reconciles()
    assert route53.values(zone, "legacy.example.com", "A") == ["203.0.113.9"]
    record.refresh_from_db()
    assert (record.status, record.owner) == ("ready", "autoglue")


def test_another_organizations_marker_is_a_conflict(domain, route53, zone, api, other_org):
    route53.put(zone, "shared.example.com", "A", ["192.0.2.1"])
    route53.put(
        zone,
        "_autoglue.shared.example.com",
        "TXT",
        [f'"v=ag1 org={other_org.pk} rec=00000000-0000-0000-0000-000000000000 fp=0 type=A"'],
    )
    record = add_record(api, domain, name="shared", type="A", values=["203.0.113.9"])
    run_reconciles()
    assert route53.values(zone, "shared.example.com", "A") == ["192.0.2.1"]
    record.refresh_from_db()
    assert record.owner == "external" and "another organization" in record.last_error


def test_throttled_calls_are_retried_with_backoff(domain, route53, zone, api):
    add_record(api, domain, name="api", type="A", values=["203.0.113.10"])
    route53.proxy.throttle("ListResourceRecordSets", 1)
    route53.proxy.throttle("ChangeResourceRecordSets", 2)
    assert run_reconciles() == ["succeeded"]
    assert route53.proxy.throttled == {"ListResourceRecordSets": 1, "ChangeResourceRecordSets": 2}
    assert route53.values(zone, "api.example.com", "A") == ["203.0.113.10"]


def test_each_change_is_a_line_of_the_runs_log(domain, route53, api):
    add_record(api, domain, name="api", type="A", values=["203.0.113.10"])
    run_reconciles()
    job = JobRun.objects.filter(kind="dns_reconcile", status="succeeded").first()
    log = "".join(JobLog.objects.filter(job=job).values_list("chunk", flat=True))
    assert "CREATE A api.example.com ttl=300 203.0.113.10" in log
    assert "CREATE TXT _autoglue.api.example.com" in log
    assert "batch 1/1 applied (4 changes)" in log
    assert "CANARY" not in log


def test_under_require_plan_changes_wait_for_an_applied_plan_that_does_exactly_what_it_said(
    domain, route53, zone, api, client_for, owner, org
):
    assert client_for(owner, org).patch(
        "/api/v1/dns/settings", {"require_plan": True}, format="json"
    ).json() == {
        "organization_id": str(domain.organization_id),
        "require_plan": True,
    }
    route53.put(zone, "taken.example.com", "A", ["198.51.100.7"])
    add_record(api, domain, name="api", type="A", values=["203.0.113.10"])
    add_record(api, domain, name="taken", type="A", values=["203.0.113.11"])
    run_reconciles()
    assert route53.values(zone, "api.example.com", "A") is None
    assert route53.proxy.calls["ChangeResourceRecordSets"] == 0

    plan = api.get(f"/api/v1/dns/domains/{domain.pk}/plan").json()
    assert plan["status"] == "open"
    records = [c for c in plan["changes"] if c["kind"] == "record"]
    assert {(c["action"], c["name"], c["owner"]) for c in records} == {
        ("create", "api.example.com", "autoglue"),
        ("conflict", "taken.example.com", "external"),
    }
    assert plan["summary"]["create"] == 1 and plan["summary"]["conflict"] == 1

    before = set(route53.rrsets(zone))
    response = api.post(f"/api/v1/dns/plans/{plan['id']}/apply")
    assert response.status_code == 202 and response.json()["status"] == "applying"
    assert run_reconciles() == ["succeeded"]
    after = set(route53.rrsets(zone))
    planned = {(c["name"], c["type"]) for c in plan["changes"] if c["action"] == "create"}
    assert after - before == planned
    assert api.get(f"/api/v1/dns/plans/{plan['id']}").json()["status"] == "applied"


def test_applying_a_plan_is_refused_once_the_zone_or_the_records_changed(
    domain, route53, zone, api, org
):
    services.dns_settings_update(organization_id=org.pk, require_plan=True)
    record = add_record(api, domain, name="api", type="A", values=["203.0.113.10"])
    run_reconciles()
    plan = api.get(f"/api/v1/dns/domains/{domain.pk}/plan").json()
    route53.put(zone, "other.example.com", "A", ["198.51.100.1"])
    api.post(f"/api/v1/dns/plans/{plan['id']}/apply")
    assert run_reconciles() == ["failed"]
    assert DNSPlan.objects.get(pk=plan["id"]).status == "stale"
    assert route53.values(zone, "api.example.com", "A") is None

    plan = api.get(f"/api/v1/dns/domains/{domain.pk}/plan").json()
    api.patch(f"/api/v1/dns/records/{record.pk}", {"ttl": 60}, format="json")
    response = api.post(f"/api/v1/dns/plans/{plan['id']}/apply")
    assert response.status_code == 409 and response.json()["code"] == "plan_stale"


def test_deleting_a_domain_removes_what_autoglue_owns_and_releases_its_clusters(
    domain, route53, zone, api, org
):
    record = add_record(api, domain, name="cp", type="A", values=["203.0.113.10"])
    route53.put(zone, "foreign.example.com", "A", ["198.51.100.7"])
    run_reconciles()
    cluster = ClusterFactory(
        organization=org, captain_domain=domain, control_plane_record_set=record, status="ready"
    )
    assert api.delete(f"/api/v1/dns/domains/{domain.pk}").status_code == 204
    assert api.get(f"/api/v1/dns/domains/{domain.pk}").status_code == 404
    cluster.refresh_from_db()
    assert (cluster.captain_domain_id, cluster.control_plane_record_set_id) == (None, None)
    assert cluster.status == Cluster.Status.PRE_PENDING
    assert run_reconciles() == ["succeeded"]
    left = set(route53.rrsets(zone))
    assert not {n for n in left if "cp.example.com" in n[0]}
    assert ("foreign.example.com", "A") in left


def test_the_schedule_queues_domains_with_pending_work_once(domain, route53, api):
    add_record(api, domain, name="api", type="A", values=["203.0.113.10"])
    # The change already queued a reconcile; the tick adds none while it is queued.
    assert services.dns_reconcile_tick() == 0
    run_reconciles()
    Domain.objects.filter(pk=domain.pk).update(last_reconciled_at=None)
    assert services.dns_reconcile_tick() == 1
    assert run_reconciles() == ["succeeded"]
    assert services.dns_reconcile_tick() == 0


def test_one_reconcile_per_zone_at_a_time(domain, route53, api, settings):
    add_record(api, domain, name="api", type="A", values=["203.0.113.10"])
    # One queued run per domain: asking again while it is queued adds none.
    assert services.domain_reconcile_enqueue(domain=domain) is None
    assert JobRun.objects.filter(kind="dns_reconcile", status="queued").count() == 1

    # Another reconcile of the same zone (any domain, any organization) holds the zone's lock.
    import psycopg
    from django.db import connection

    params = connection.get_connection_params()
    settings.DNS_ZONE_LOCK_WAIT_SECONDS = 1
    with psycopg.connect(
        host=params.get("host"),
        port=params.get("port"),
        user=params.get("user"),
        dbname=params["dbname"],
        autocommit=True,
    ) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [services._zone_lock_key(domain.zone_id)])
        assert run_reconciles() == ["failed"]
    job = JobRun.objects.get(kind="dns_reconcile", status="failed")
    assert f"zone {domain.zone_id} stayed busy" in job.error
    assert route53.proxy.calls["ChangeResourceRecordSets"] == 0


def test_a_record_set_route53_refuses_fails_alone_not_with_its_whole_batch(
    domain, route53, zone, api
):
    from apps.dns.tests.factories import RecordSetFactory

    good = [
        add_record(api, domain, name=f"app{i}", type="A", values=[f"203.0.113.{i}"])
        for i in range(1, 6)
    ]
    # A row from before names were validated: Route 53 (moto alike) refuses the space in it
    # with InvalidChangeBatch, and the batch it is in with it.
    bad = RecordSetFactory(domain=domain, name="bad name", type="A", values=["203.0.113.99"])
    run_reconciles()

    bad.refresh_from_db()
    assert bad.status == RecordSet.Status.FAILED
    assert bad.last_error
    for record in good:
        record.refresh_from_db()
        assert record.status == RecordSet.Status.READY, record.last_error
        assert route53.values(zone, f"{record.name}.example.com", "A") == record.values
    # Halving the refused batch finds the bad name in a handful of calls, not one per name.
    assert route53.proxy.calls["ChangeResourceRecordSets"] <= 8


def test_changes_sent_to_a_zone_make_open_plans_of_its_other_domains_stale(
    domain, route53, zone, api, route53_credential
):
    sibling = services.domain_create(
        organization_id=domain.organization_id,
        domain_name="dev.example.com",
        credential_id=str(route53_credential.pk),
        zone_id=zone,
    )
    assert run_reconciles() == ["succeeded"]
    sibling.refresh_from_db()
    sibling_plan = services.domain_plan_create(domain=sibling)
    assert sibling_plan.status == "open"

    add_record(api, domain, name="api", type="A", values=["203.0.113.10"])
    assert run_reconciles() == ["succeeded"]
    assert route53.values(zone, "api.example.com", "A") == ["203.0.113.10"]

    sibling_plan.refresh_from_db()
    assert sibling_plan.status == "stale"
    assert sibling_plan.error == "the zone changed since the plan"
    response = api.post(f"/api/v1/dns/plans/{sibling_plan.pk}/apply")
    assert response.status_code == 409 and response.json()["code"] == "plan_stale"


def test_moving_a_domain_to_another_zone_makes_its_open_plan_stale(domain, route53, api):
    plan = services.domain_plan_create(domain=domain)
    other_zone = route53.create_zone("example.com")
    response = api.patch(f"/api/v1/dns/domains/{domain.pk}", {"zone_id": other_zone}, format="json")
    assert response.status_code == 200, response.json()
    plan.refresh_from_db()
    assert plan.status == "stale"
    response = api.post(f"/api/v1/dns/plans/{plan.pk}/apply")
    assert response.status_code == 409 and response.json()["code"] == "plan_stale"

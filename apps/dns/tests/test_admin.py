"""DNS in the console: domains and their record sets are saved through the DNS services (the
Route 53 credential rule, name normalisation, the CNAME rule, a reconcile queued); the plan page
shows what the next reconcile would change (read from moto in server mode) and applies it
through the API's service, role-checked; DNS settings and stored plans."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.messages import get_messages

from apps.accounts.tests.factories import UserFactory
from apps.dns import services
from apps.dns.models import DNSPlan, DNSSettings, Domain, RecordSet
from apps.dns.tests.conftest import run_reconciles
from apps.dns.tests.factories import DomainFactory
from apps.infrastructure import registry
from apps.infrastructure.tests.factories import CredentialFactory
from apps.jobs.models import JobRun
from apps.orgs.tests.admin_support import (
    add_inline_row,
    console_for,
    form_data,
    form_errors,
    staff_of,
)

pytestmark = pytest.mark.django_db


def _route53(org):
    scope = {"service": "route53"}
    return CredentialFactory(
        organization=org,
        scope_kind="service",
        scope=scope,
        scope_fingerprint=registry.scope_fingerprint(scope),
    )


@pytest.fixture
def alice(org):
    return console_for(staff_of(org, "owner", "alice@acme.example"))


def _add_domain(client, org, credential, name="Example.COM"):
    return client.post(
        "/admin/dns/domain/add/",
        {
            "organization": str(org.pk),
            "domain_name": name,
            "credential": str(credential.pk),
            "zone_id": "",
            "recordset_set-TOTAL_FORMS": "0",
            "recordset_set-INITIAL_FORMS": "0",
            "record_sets-TOTAL_FORMS": "0",
            "record_sets-INITIAL_FORMS": "0",
        },
    )


def test_a_domain_is_created_through_the_service_and_queues_a_reconcile(alice, org):
    response = _add_domain(alice, org, _route53(org))

    assert response.status_code == 302, form_errors(response)
    domain = Domain.objects.get()
    assert domain.domain_name == "example.com"
    assert JobRun.objects.filter(subject_id=domain.pk).exists()


def test_a_credential_that_cannot_reach_route53_is_refused_on_its_field(alice, org):
    s3_only = CredentialFactory(organization=org)

    response = _add_domain(alice, org, s3_only)

    assert "route53" in str(response.context["adminform"].form.errors["credential"])
    assert not Domain.objects.exists()


def test_another_organizations_credential_is_refused(alice, org, other_org):
    response = _add_domain(alice, org, _route53(other_org))

    assert "credential" in response.context["adminform"].form.errors
    assert not Domain.objects.exists()


def test_a_record_set_added_inline_goes_through_the_service(alice, org):
    domain = DomainFactory(organization=org, credential=_route53(org), domain_name="acme.example")
    page = alice.get(f"/admin/dns/domain/{domain.pk}/change/")
    data = form_data(page)
    prefix = page.context["inline_admin_formsets"][0].formset.prefix
    add_inline_row(data, prefix, name="API", type="A", ttl="300", values='["203.0.113.9"]')

    response = alice.post(f"/admin/dns/domain/{domain.pk}/change/", data)

    assert response.status_code == 302, form_errors(response)
    record = RecordSet.objects.get(domain=domain)
    assert (record.name, record.owner, record.organization_id) == ("api", "autoglue", org.pk)
    assert record.fingerprint


def test_a_cname_at_the_apex_is_refused_with_a_form_error(alice, org):
    domain = DomainFactory(organization=org, credential=_route53(org), domain_name="acme.example")
    page = alice.get(f"/admin/dns/domain/{domain.pk}/change/")
    data = form_data(page)
    prefix = page.context["inline_admin_formsets"][0].formset.prefix
    add_inline_row(data, prefix, name="@", type="CNAME", ttl="300", values='["x.example."]')

    response = alice.post(f"/admin/dns/domain/{domain.pk}/change/", data)

    assert "apex" in form_errors(response)
    assert not RecordSet.objects.filter(domain=domain).exists()


def test_reconcile_now_queues_a_reconcile_and_logs_it(alice, org):
    domain = DomainFactory(organization=org, credential=_route53(org))

    alice.post("/admin/dns/domain/", {"action": "reconcile_now", "_selected_action": [domain.pk]})

    assert JobRun.objects.filter(subject_id=domain.pk).count() == 1
    assert LogEntry.objects.filter(object_id=str(domain.pk), change_message__contains="reconcile")


# --- the plan page --------------------------------------------------------------------------


def _messages(response) -> str:
    return " ".join(str(m) for m in get_messages(response.wsgi_request))


def _plan_url(domain) -> str:
    return f"/admin/dns/domain/{domain.pk}/plan/"


def _apply_url(plan) -> str:
    return f"/admin/dns/dnsplan/{plan.pk}/apply/"


@pytest.fixture
def pending_domain(route53, org, route53_credential):
    """example.com, checked and ready, in an organization that requires plans, with two record
    sets waiting: `api` (free) and `taken` (someone else's A record is already there)."""
    zone = route53.create_zone("example.com")
    domain = services.domain_create(
        organization_id=org.pk, domain_name="example.com", credential_id=route53_credential.pk
    )
    assert run_reconciles() == ["succeeded"]
    services.dns_settings_update(organization_id=org.pk, require_plan=True)
    route53.put(zone, "taken.example.com", "A", ["198.51.100.7"])
    services.record_set_create(domain=domain, name="api", type="A", values=["203.0.113.10"])
    services.record_set_create(domain=domain, name="taken", type="A", values=["203.0.113.11"])
    run_reconciles()  # under "require plan" this only reports
    domain.refresh_from_db()
    domain.zone = zone
    return domain


def test_the_plan_page_shows_the_creates_and_conflicts_with_their_owners(
    alice, pending_domain, route53
):
    route53.proxy.reset_counts()

    response = alice.post(_plan_url(pending_domain), follow=True)

    assert response.status_code == 200
    page = response.content.decode()
    assert "api.example.com" in page and "_autoglue.api.example.com" in page
    assert "taken.example.com" in page and "external: " in page
    assert "1 to create" in page and "1 in conflict" in page
    assert "Apply this plan" in page
    plan = DNSPlan.objects.get(domain=pending_domain)
    assert plan.status == DNSPlan.Status.OPEN
    assert LogEntry.objects.filter(
        object_id=str(pending_domain.pk), change_message__contains=f"plan {plan.pk}"
    ).exists()
    # Showing a plan changes nothing in Route 53.
    assert route53.proxy.calls["ChangeResourceRecordSets"] == 0
    assert route53.values(pending_domain.zone, "api.example.com", "A") is None


def test_the_change_page_and_the_list_action_lead_to_the_plan(alice, pending_domain):
    change = alice.get(f"/admin/dns/domain/{pending_domain.pk}/change/")
    assert _plan_url(pending_domain) in change.content.decode()

    response = alice.post(
        "/admin/dns/domain/", {"action": "show_plan", "_selected_action": [pending_domain.pk]}
    )

    assert response.status_code == 302 and response["Location"] == _plan_url(pending_domain)


def test_applying_the_plan_from_the_console_makes_exactly_its_changes(
    alice, pending_domain, route53
):
    alice.post(_plan_url(pending_domain))
    plan = DNSPlan.objects.get(domain=pending_domain)

    response = alice.post(_apply_url(plan))

    assert response.status_code == 302
    assert "Plan applying" in _messages(response)
    plan.refresh_from_db()
    assert plan.status == DNSPlan.Status.APPLYING
    assert run_reconciles() == ["succeeded"]
    assert route53.values(pending_domain.zone, "api.example.com", "A") == ["203.0.113.10"]
    assert route53.values(pending_domain.zone, "taken.example.com", "A") == ["198.51.100.7"]
    assert DNSPlan.objects.get(pk=plan.pk).status == DNSPlan.Status.APPLIED
    assert LogEntry.objects.filter(
        object_id=str(pending_domain.pk), change_message__contains=f"Applied DNS plan {plan.pk}"
    ).exists()


def test_a_plan_whose_record_sets_changed_since_is_refused_with_the_services_message(
    alice, pending_domain, route53
):
    alice.post(_plan_url(pending_domain))
    plan = DNSPlan.objects.get(domain=pending_domain)
    services.record_set_create(domain=pending_domain, name="www", type="A", values=["192.0.2.5"])
    run_reconciles()

    response = alice.post(_apply_url(plan))

    assert "record sets changed since the plan" in _messages(response)
    assert DNSPlan.objects.get(pk=plan.pk).status == DNSPlan.Status.STALE
    assert route53.values(pending_domain.zone, "api.example.com", "A") is None


def test_reading_the_plan_page_never_makes_a_plan(alice, pending_domain, route53):
    route53.proxy.reset_counts()

    first = alice.get(_plan_url(pending_domain))

    assert first.status_code == 200 and 'id="no-plan"' in first.content.decode()
    alice.post(_plan_url(pending_domain))
    for _ in range(3):
        assert alice.get(_plan_url(pending_domain)).status_code == 200
    assert DNSPlan.objects.filter(domain=pending_domain).count() == 1
    assert route53.proxy.calls["ListResourceRecordSets"] == 1


def test_a_plan_made_stale_by_a_zone_change_is_marked_stale(alice, pending_domain, route53):
    alice.post(_plan_url(pending_domain))
    plan = DNSPlan.objects.get(domain=pending_domain)
    # Someone edits the zone outside Autoglue; the next reconcile reads it.
    route53.put(pending_domain.zone, "other.example.com", "TXT", ['"hello"'])
    services.domain_reconcile_enqueue(domain=pending_domain)
    assert run_reconciles() == ["succeeded"]

    plan.refresh_from_db()
    page = alice.get(_plan_url(pending_domain)).content.decode()

    assert plan.status == DNSPlan.Status.STALE
    assert plan.error == "the zone changed since the plan"
    assert "This plan is stale" in page and 'id="apply-plan"' not in page


def test_a_plan_made_stale_by_a_record_set_change_is_marked_stale_at_once(alice, pending_domain):
    alice.post(_plan_url(pending_domain))
    plan = DNSPlan.objects.get(domain=pending_domain)

    services.record_set_create(domain=pending_domain, name="www", type="A", values=["192.0.2.5"])

    plan.refresh_from_db()
    assert plan.status == DNSPlan.Status.STALE
    assert plan.error == "the record sets changed since the plan"


def test_a_record_set_edit_that_changes_nothing_a_plan_writes_leaves_the_plan_open(
    alice, pending_domain
):
    record = services.record_set_create(
        domain=pending_domain, name="www", type="A", values=["192.0.2.5"]
    )
    alice.post(_plan_url(pending_domain))
    plan = DNSPlan.objects.get(domain=pending_domain)

    services.record_set_update(record_set=record, changes={"status": "failed"})
    services.record_set_update(record_set=record, changes={"values": ["192.0.2.5"]})
    plan.refresh_from_db()
    assert plan.status == DNSPlan.Status.OPEN

    services.record_set_update(record_set=record, changes={"ttl": 60})
    plan.refresh_from_db()
    assert plan.status == DNSPlan.Status.STALE


def test_a_new_plan_supersedes_an_open_one_computed_from_an_older_zone(
    alice, pending_domain, route53
):
    alice.post(_plan_url(pending_domain))
    old = DNSPlan.objects.get(domain=pending_domain)
    route53.put(pending_domain.zone, "other.example.com", "TXT", ['"hello"'])

    alice.post(_plan_url(pending_domain))

    old.refresh_from_db()
    newest = DNSPlan.objects.filter(domain=pending_domain).order_by("-created_at").first()
    assert old.status == DNSPlan.Status.STALE
    assert newest is not None and newest.status == DNSPlan.Status.OPEN


def test_a_viewer_reads_the_plan_but_cannot_apply_it(org, pending_domain):
    viewer = console_for(staff_of(org, "viewer", "victor@acme.example"))

    page = viewer.post(_plan_url(pending_domain), follow=True)
    assert page.status_code == 200 and "api.example.com" in page.content.decode()
    assert "Apply this plan" not in page.content.decode()
    plan = DNSPlan.objects.get(domain=pending_domain)

    assert viewer.post(_apply_url(plan)).status_code == 403
    assert DNSPlan.objects.get(pk=plan.pk).status == DNSPlan.Status.OPEN
    assert not JobRun.objects.filter(subject_id=pending_domain.pk, status="queued").exists()


def test_another_organizations_staff_cannot_reach_the_plan_page_or_apply(org, other_org):
    domain = DomainFactory(organization=org, credential=_route53(org), domain_name="acme.example")
    plan = DNSPlan.objects.create(
        organization=org, domain=domain, zone_digest="z", desired_digest="d"
    )
    bob = console_for(staff_of(other_org, "owner", "bob@globex.example"))

    page = bob.post(_plan_url(domain))
    applied = bob.post(_apply_url(plan))
    stored = bob.get(f"/admin/dns/dnsplan/{plan.pk}/change/")

    for response in (page, applied, stored):
        assert response.status_code == 302 and response["Location"] == "/admin/"
        assert "acme.example" not in _messages(response)
    assert DNSPlan.objects.get(pk=plan.pk).status == DNSPlan.Status.OPEN
    assert DNSPlan.objects.filter(domain=domain).count() == 1
    assert not LogEntry.objects.filter(object_id=str(domain.pk)).exists()


def test_the_plan_of_a_domain_not_yet_checked_is_refused_with_a_message(alice, org):
    domain = DomainFactory(organization=org, credential=_route53(org), domain_name="acme.example")

    response = alice.post(_plan_url(domain))

    assert response.status_code == 302
    assert response["Location"] == f"/admin/dns/domain/{domain.pk}/change/"
    assert "has not been checked yet" in _messages(response)
    assert not DNSPlan.objects.exists()


# --- settings and stored plans ----------------------------------------------------------------


def test_an_owner_turns_require_plan_on_through_the_settings_service(alice, org):
    response = alice.post(
        "/admin/dns/dnssettings/add/", {"organization": str(org.pk), "require_plan": "on"}
    )

    assert response.status_code == 302, form_errors(response)
    assert services.dns_settings_get(organization_id=org.pk).require_plan is True
    found = DNSSettings.objects.get(organization=org)
    response = alice.post(f"/admin/dns/dnssettings/{found.pk}/change/", {})
    assert response.status_code == 302, form_errors(response)
    assert services.dns_settings_get(organization_id=org.pk).require_plan is False


def test_an_organization_has_one_settings_row_and_a_second_add_is_a_form_error(alice, org):
    services.dns_settings_update(organization_id=org.pk, require_plan=True)

    response = alice.post("/admin/dns/dnssettings/add/", {"organization": str(org.pk)})

    assert "already exists" in form_errors(response)
    assert services.dns_settings_get(organization_id=org.pk).require_plan is True


def test_a_member_reads_the_settings_but_only_owners_and_admins_change_them(org):
    found = services.dns_settings_update(organization_id=org.pk, require_plan=True)
    member = console_for(staff_of(org, "member", "mia@acme.example"))

    assert member.get("/admin/dns/dnssettings/").status_code == 200
    assert member.post(f"/admin/dns/dnssettings/{found.pk}/change/", {}).status_code == 403
    assert member.get("/admin/dns/dnssettings/add/").status_code == 403
    assert services.dns_settings_get(organization_id=org.pk).require_plan is True


def test_stored_plans_are_read_only(alice, org):
    domain = DomainFactory(organization=org, credential=_route53(org))
    plan = DNSPlan.objects.create(
        organization=org, domain=domain, zone_digest="z", desired_digest="d"
    )

    page = alice.get(f"/admin/dns/dnsplan/{plan.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert (
        alice.post(f"/admin/dns/dnsplan/{plan.pk}/change/", {"status": "applied"}).status_code
        == 403
    )
    assert alice.get("/admin/dns/dnsplan/add/").status_code == 403
    assert alice.post(f"/admin/dns/dnsplan/{plan.pk}/delete/", {"post": "yes"}).status_code == 403
    assert DNSPlan.objects.get(pk=plan.pk).status == DNSPlan.Status.OPEN


def test_the_plan_list_costs_the_same_queries_for_many_plans(
    alice, org, django_assert_max_num_queries
):
    domain = DomainFactory(organization=org, credential=_route53(org))
    for _ in range(20):
        DNSPlan.objects.create(organization=org, domain=domain, zone_digest="z", desired_digest="d")

    with django_assert_max_num_queries(12):
        response = alice.get("/admin/dns/dnsplan/")

    assert len(response.context["cl"].result_list) == 20


def test_settings_and_plan_pages_answer_everyone_and_keep_organizations_apart(org, other_org):
    rows = {}
    for organization, tag in ((org, "acme"), (other_org, "globex")):
        domain = DomainFactory(
            organization=organization,
            credential=_route53(organization),
            domain_name=f"{tag}.example",
        )
        rows[tag] = (
            services.dns_settings_update(organization_id=organization.pk, require_plan=True),
            DNSPlan.objects.create(
                organization=organization,
                domain=domain,
                zone_digest="z",
                desired_digest="d",
                changes=[{"action": "create", "kind": "record", "name": f"api.{tag}.example"}],
            ),
        )
    root = console_for(UserFactory(primary_email="root@autoglue.example", is_admin=True))
    owner = console_for(staff_of(org, "owner", "olive@acme.example"))
    for console in (root, owner):
        for obj in rows["acme"]:
            base = f"/admin/dns/{obj._meta.model_name}/"
            for url in (base, f"{base}?q=a", f"{base}{obj.pk}/change/", f"{base}{obj.pk}/history/"):
                assert console.get(url).status_code == 200, url
            garbage = {"organization": "not-a-uuid", "require_plan": "maybe", "status": "x"}
            assert console.post(f"{base}{obj.pk}/change/", garbage).status_code in (200, 302, 403)
    for obj in rows["globex"]:
        base = f"/admin/dns/{obj._meta.model_name}/"
        listed = owner.get(base)
        assert obj.pk not in {row.pk for row in listed.context["cl"].result_list}
        assert "globex" not in listed.content.decode()
        assert owner.get(f"{base}{obj.pk}/change/").status_code == 302
    assert (
        "api.globex.example"
        in root.get(f"/admin/dns/dnsplan/{rows['globex'][1].pk}/change/").content.decode()
    )


def test_a_plan_refused_while_a_reconcile_runs_stays_open_and_can_be_applied_later(
    alice, pending_domain, route53
):
    alice.post(_plan_url(pending_domain))
    plan = DNSPlan.objects.get(domain=pending_domain)
    assert services.domain_reconcile_enqueue(domain=pending_domain) is not None

    refused = alice.post(_apply_url(plan))

    assert "a reconcile of this domain is running" in _messages(refused)
    assert DNSPlan.objects.get(pk=plan.pk).status == DNSPlan.Status.OPEN
    run_reconciles()
    stored = alice.get(refused["Location"])
    assert "Apply this plan" in stored.content.decode()
    assert "Plan applying" in _messages(alice.post(_apply_url(plan)))
    assert run_reconciles() == ["succeeded"]
    assert route53.values(pending_domain.zone, "api.example.com", "A") == ["203.0.113.10"]


# --- forms that guide -------------------------------------------------------------------------


def test_record_values_are_typed_one_per_line_and_saved_as_the_apis_list(alice, org):
    domain = DomainFactory(organization=org, credential=_route53(org), domain_name="acme.example")

    response = alice.post(
        "/admin/dns/recordset/add/",
        {
            "organization": str(org.pk),
            "domain": str(domain.pk),
            "name": "www",
            "type": "A",
            "ttl": "60",
            "values": "192.0.2.1\r\n\r\n192.0.2.2\r\n",
        },
    )

    assert response.status_code == 302, form_errors(response)
    record = RecordSet.objects.get(domain=domain, name="www")
    assert record.values == ["192.0.2.1", "192.0.2.2"]
    page = alice.get(f"/admin/dns/recordset/{record.pk}/change/").content.decode()
    assert "192.0.2.1\n192.0.2.2</textarea>" in page
    assert "One value per line" in page


def _add_record(alice, org, domain, name, rtype, values):
    return alice.post(
        "/admin/dns/recordset/add/",
        {
            "organization": str(org.pk),
            "domain": str(domain.pk),
            "name": name,
            "type": rtype,
            "values": values,
        },
    )


def test_spaces_around_a_line_are_dropped_except_in_txt_values(alice, org):
    domain = DomainFactory(organization=org, credential=_route53(org), domain_name="acme.example")

    spaced = _add_record(alice, org, domain, "www", "A", "  192.0.2.1 \r\n\t192.0.2.2\r\n")
    txt = _add_record(alice, org, domain, "note", "TXT", "hello world \n[not json")

    assert spaced.status_code == 302, form_errors(spaced)
    assert RecordSet.objects.get(name="www").values == ["192.0.2.1", "192.0.2.2"]
    assert txt.status_code == 302, form_errors(txt)
    assert RecordSet.objects.get(name="note").values == ["hello world ", "[not json"]


def test_a_value_the_api_refuses_is_refused_on_its_line(alice, org):
    domain = DomainFactory(organization=org, credential=_route53(org), domain_name="acme.example")
    data = {
        "organization": str(org.pk),
        "domain": str(domain.pk),
        "name": "www",
        "type": "A",
        "values": "192.0.2.1\nnot-an-ip",
    }

    response = alice.post("/admin/dns/recordset/add/", data)

    assert "[1]" in str(response.context["adminform"].form.errors["values"])
    assert not RecordSet.objects.filter(domain=domain).exists()


def test_record_types_and_the_section_read_as_dns_writes_them(alice, org):
    page = alice.get("/admin/dns/recordset/add/").content.decode()
    assert '<option value="AAAA">AAAA</option>' in page
    assert '<option value="CNAME">CNAME</option>' in page
    assert ">DNS</a>" in page and "Dns" not in page


def test_a_dns_settings_row_is_titled_by_its_organization(alice, org):
    found = services.dns_settings_update(organization_id=org.pk, require_plan=True)
    page = alice.get(f"/admin/dns/dnssettings/{found.pk}/change/").content.decode()
    assert f"DNS settings of {org.name}" in page
    assert f"DNS settings of {org.pk}" not in page

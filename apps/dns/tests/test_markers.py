"""Ownership markers cannot be forged (issue 19, point 2): two organizations share one hosted
zone on moto in server mode. A name with a reserved label is never written; a marker value
Autoglue did not sign for that very record is never trusted, merged or overwritten, so neither a
neighbour's reconcile nor our own deletes what Autoglue did not write; the attempt is a conflict
on the record set."""

from __future__ import annotations

import uuid

import pytest

from apps.dns import services
from apps.dns.models import Domain, RecordSet
from apps.dns.reconcile import POISON_VALUE as POISON
from apps.dns.tests.conftest import run_reconciles
from apps.dns.tests.factories import DomainFactory, RecordSetFactory
from apps.dns.tests.test_api import aws
from apps.infrastructure.models import Credential

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_domain(ready_domain):
    """Organization A's domain `example.com`, ready in the zone B shares."""
    return ready_domain


@pytest.fixture
def bob(client_for, outsider, other_org):
    """The owner of organization B, which uses the same hosted zone with its own credential."""
    return client_for(outsider, other_org)


def _b_domain(other_org, zone, name):
    # As a domain row of B made before names with reserved labels were refused.
    return DomainFactory(
        organization=other_org,
        domain_name=name,
        zone_id=zone,
        zone_name="example.com",
        status=Domain.Status.READY,
        credential=Credential.objects.filter(organization=other_org).first() or aws(other_org),
    )


def _add_record(client, domain, **body):
    response = client.post(f"/api/v1/dns/domains/{domain.pk}/records", body, format="json")
    assert response.status_code == 201, response.json()
    return RecordSet.objects.get(pk=response.json()["id"])


def _reconcile(domain):
    services.domain_reconcile_enqueue(domain=domain)
    return run_reconciles()


@pytest.mark.parametrize(
    "name",
    [
        "_autoglue.www.example.com",
        "www._autoglue.example.com",
        "extdns-www.example.com",
        "a.extdns-a-www.example.com",
        "_AUTOGLUE.www.example.com.",
    ],
)
def test_a_domain_name_with_a_reserved_label_anywhere_is_refused(bob, other_org, name):
    response = bob.post(
        "/api/v1/dns/domains",
        {"domain_name": name, "credential_id": str(aws(other_org).pk)},
        format="json",
    )
    assert response.status_code == 400, response.json()
    assert response.json()["message"].startswith("domain_name:")
    assert "reserved" in response.json()["message"]


def test_a_record_name_with_a_reserved_label_anywhere_is_refused(api, alice_domain):
    for name in ("www._autoglue", "a.extdns-b", "x._autoglue.example.com."):
        response = api.post(
            f"/api/v1/dns/domains/{alice_domain.pk}/records",
            {"name": name, "type": "A", "values": ["203.0.113.1"]},
            format="json",
        )
        assert response.status_code == 400, (name, response.json())
        assert "reserved" in response.json()["message"]


def test_another_organizations_reconcile_cannot_delete_our_record_through_a_planted_marker(
    api, bob, route53, zone, alice_domain, other_org
):
    # B's domain `_autoglue.www.example.com`: its apex is A's marker name for `www`.
    plant_domain = _b_domain(other_org, zone, "_autoglue.www.example.com")
    b_parent = _b_domain(other_org, zone, "example.com")
    plant = RecordSetFactory(domain=plant_domain, name="@", type="TXT", values=["placeholder"])
    _reconcile(plant_domain)

    www = _add_record(api, alice_domain, name="www", type="A", values=["203.0.113.5"])
    run_reconciles()
    assert route53.values(zone, "www.example.com", "A") == ["203.0.113.5"]
    a_marker = route53.values(zone, "_autoglue.www.example.com", "TXT")

    # B writes, at its apex, A's marker plus a value saying B owns the A record at `www`.
    forged = f'"v=ag1 org={other_org.pk} rec={uuid.uuid4()} fp=0123456789abcdef type=A"'
    response = bob.patch(
        f"/api/v1/dns/records/{plant.pk}", {"values": [*a_marker, forged]}, format="json"
    )
    assert response.status_code == 200, response.json()
    _reconcile(plant_domain)
    _reconcile(b_parent)

    # A's record is still there, and so is what A's API says about it.
    assert route53.values(zone, "www.example.com", "A") == ["203.0.113.5"]
    assert route53.values(zone, "extdns-a-www.example.com", "TXT") == [POISON]
    assert RecordSet.objects.get(pk=www.pk).status == RecordSet.Status.READY
    # B's attempt is a conflict on B's record set; nothing of it reached Route 53.
    plant.refresh_from_db()
    assert (plant.status, plant.owner) == ("failed", "external")
    assert "reserved" in plant.last_error
    assert forged not in (route53.values(zone, "_autoglue.www.example.com", "TXT") or [])


def test_a_marker_written_straight_into_route53_never_makes_another_organization_delete_ours(
    api, route53, zone, alice_domain, other_org
):
    www = _add_record(api, alice_domain, name="www", type="A", values=["203.0.113.5"])
    run_reconciles()
    b_parent = _b_domain(other_org, zone, "example.com")
    a_marker = route53.values(zone, "_autoglue.www.example.com", "TXT")
    # B, with its own access to the shared zone, adds a well-formed value naming itself.
    forged = f'"v=ag1 org={other_org.pk} rec={uuid.uuid4()} fp=0123456789abcdef type=A"'
    route53.put(zone, "_autoglue.www.example.com", "TXT", [*a_marker, forged])

    _reconcile(b_parent)
    assert route53.values(zone, "www.example.com", "A") == ["203.0.113.5"]

    # A's own next run does not take the forged value into its marker either: it reports it.
    _reconcile(alice_domain)
    assert route53.values(zone, "www.example.com", "A") == ["203.0.113.5"]
    assert sorted(route53.values(zone, "_autoglue.www.example.com", "TXT")) == sorted(
        [*a_marker, forged]
    )
    www.refresh_from_db()
    assert (www.status, www.owner) == ("failed", "external")
    assert "another organization" in www.last_error


@pytest.mark.parametrize("via_domain", [True, False])
def test_a_planted_marker_naming_us_never_makes_our_reconcile_delete_a_hand_made_record(
    api, bob, route53, zone, alice_domain, org, other_org, via_domain
):
    # Made by hand in Route 53, not by Autoglue.
    route53.put(zone, "www.example.com", "MX", ["10 mail.example.net"])
    forged = f'"v=ag1 org={org.pk} rec={uuid.uuid4()} fp=0123456789abcdef type=MX"'
    if via_domain:
        plant_domain = _b_domain(other_org, zone, "_autoglue.www.example.com")
        plant = RecordSetFactory(domain=plant_domain, name="@", type="TXT", values=[forged])
        _reconcile(plant_domain)
        plant.refresh_from_db()
        assert (plant.status, plant.owner) == ("failed", "external")
        assert "reserved" in plant.last_error
    else:
        route53.put(zone, "_autoglue.www.example.com", "TXT", [forged])

    www = _add_record(api, alice_domain, name="www", type="A", values=["203.0.113.5"])
    run_reconciles()

    assert route53.values(zone, "www.example.com", "MX") == ["10 mail.example.net"]
    www.refresh_from_db()
    if via_domain:
        # Nothing was planted, so A's record set is written as usual.
        assert www.status == RecordSet.Status.READY
        assert route53.values(zone, "www.example.com", "A") == ["203.0.113.5"]
    else:
        # The marker name holds a value Autoglue did not write: reported, nothing written.
        assert (www.status, www.owner) == ("failed", "external")
        assert "did not write" in www.last_error
        assert route53.values(zone, "www.example.com", "A") is None
        assert route53.values(zone, "_autoglue.www.example.com", "TXT") == [forged]


def test_our_signed_marker_copied_to_another_name_is_not_trusted(api, route53, zone, alice_domain):
    www = _add_record(api, alice_domain, name="www", type="A", values=["203.0.113.5"])
    run_reconciles()
    signed = route53.values(zone, "_autoglue.www.example.com", "TXT")
    assert signed and " mac=" in signed[0]
    # Someone copies our genuine value next to a hand-made A record elsewhere.
    route53.put(zone, "mail.example.com", "A", ["198.51.100.9"])
    route53.put(zone, "_autoglue.mail.example.com", "TXT", signed)
    route53.put(zone, "extdns-a-mail.example.com", "TXT", [POISON])
    _reconcile(alice_domain)
    assert route53.values(zone, "mail.example.com", "A") == ["198.51.100.9"]
    assert RecordSet.objects.get(pk=www.pk).status == RecordSet.Status.READY


def test_our_own_deleted_record_set_is_still_removed_through_its_signed_marker(
    api, route53, zone, alice_domain
):
    www = _add_record(api, alice_domain, name="www", type="A", values=["203.0.113.5"])
    run_reconciles()
    assert api.delete(f"/api/v1/dns/records/{www.pk}").status_code == 204
    run_reconciles()
    assert not {n for n in route53.rrsets(zone) if "www" in n[0]}


def test_the_marker_key_is_made_once_per_organization_and_survives_a_data_key_rotation(
    org, other_org
):
    from apps.core.crypto.rotation import data_key_rotate, secrets_reencrypt
    from apps.dns.models import DNSSettings

    key = services.dns_marker_key(organization_id=org.pk)
    assert len(key) == 32
    assert services.dns_marker_key(organization_id=org.pk) == key
    assert services.dns_marker_key(organization_id=other_org.pk) != key

    stored = DNSSettings.objects.filter(organization=org).values_list("marker_key", flat=True)
    before = str(stored.get())
    assert before.startswith("ag1:")  # encrypted at rest
    data_key_rotate(organization_id=org.pk)
    assert secrets_reencrypt(organization_id=org.pk).ok
    assert str(stored.get()) != before  # re-encrypted under the new data key version
    assert services.dns_marker_key(organization_id=org.pk) == key


EXTDNS_LOOKALIKE = "heritage=external-dns,external-dns/owner=orgb"


@pytest.mark.parametrize("via_autoglue", [True, False])
def test_another_organization_cannot_freeze_our_owned_record_with_a_lookalike_registry_txt(
    api, bob, route53, zone, alice_domain, other_org, via_autoglue
):
    api_record = _add_record(api, alice_domain, name="api", type="A", values=["203.0.113.5"])
    run_reconciles()
    assert route53.values(zone, "api.example.com", "A") == ["203.0.113.5"]

    # A TXT at `a-api`, the name external-dns would use for its registry record of the A record
    # at `api`: B's own record set (a row from before such values were refused), or one B
    # writes straight into the zone they share.
    if via_autoglue:
        b_parent = _b_domain(other_org, zone, "example.com")
        RecordSetFactory(domain=b_parent, name="a-api", type="TXT", values=[EXTDNS_LOOKALIKE])
        _reconcile(b_parent)
    else:
        route53.put(zone, "a-api.example.com", "TXT", [f'"{EXTDNS_LOOKALIKE}"'])
    assert route53.values(zone, "a-api.example.com", "TXT")

    # A's control plane moves: the change still reaches Route 53.
    response = api.patch(
        f"/api/v1/dns/records/{api_record.pk}", {"values": ["203.0.113.9"]}, format="json"
    )
    assert response.status_code == 200, response.json()
    run_reconciles()
    assert route53.values(zone, "api.example.com", "A") == ["203.0.113.9"]
    api_record.refresh_from_db()
    assert api_record.status == RecordSet.Status.READY, api_record.last_error


def test_a_tenants_txt_record_written_by_autoglue_is_not_taken_for_an_external_dns_claim(
    api, route53, zone, alice_domain, other_org
):
    b_parent = _b_domain(other_org, zone, "example.com")
    RecordSetFactory(domain=b_parent, name="a-web", type="TXT", values=[EXTDNS_LOOKALIKE])
    _reconcile(b_parent)
    assert route53.values(zone, "_autoglue.a-web.example.com", "TXT")

    web = _add_record(api, alice_domain, name="web", type="A", values=["203.0.113.6"])
    run_reconciles()
    web.refresh_from_db()
    assert web.status == RecordSet.Status.READY, web.last_error
    assert route53.values(zone, "web.example.com", "A") == ["203.0.113.6"]


def test_a_real_external_dns_claim_without_our_marker_still_keeps_us_away(
    api, route53, zone, alice_domain
):
    route53.put(zone, "a-web.example.com", "TXT", [f'"{EXTDNS_LOOKALIKE}"'])
    web = _add_record(api, alice_domain, name="web", type="A", values=["203.0.113.6"])
    run_reconciles()
    web.refresh_from_db()
    assert (web.status, web.owner) == ("failed", "external")
    assert "external-dns" in web.last_error


def test_a_txt_record_set_posing_as_an_external_dns_registry_record_is_refused(
    bob, other_org, zone
):
    b_parent = _b_domain(other_org, zone, "example.com")
    response = bob.post(
        f"/api/v1/dns/domains/{b_parent.pk}/records",
        {"name": "a-api", "type": "TXT", "values": [EXTDNS_LOOKALIKE]},
        format="json",
    )
    assert response.status_code == 400, response.json()
    assert "external-dns" in response.json()["message"]

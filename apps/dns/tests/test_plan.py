"""The comparison itself (no Route 53, no database): what is changed, deleted or refused."""

from __future__ import annotations

from apps.dns.clients import RRset
from apps.dns.reconcile import POISON_VALUE, Wanted, compute_plan, marker_mac, marker_value

ORG = "11111111-1111-1111-1111-111111111111"
REC = "22222222-2222-2222-2222-222222222222"
KEY = b"test-marker-key-0123456789abcdef"


def signed(name: str, rtype: str) -> str:
    """A marker value as Autoglue writes it for REC at `name`."""
    mac = marker_mac(KEY, org_id=ORG, record_id=REC, rtype=rtype, fqdn=name)
    return f'"v=ag1 org={ORG} rec={REC} fp=0 type={rtype} mac={mac}"'


def plan(zone, wanted):
    return compute_plan(
        zone_rrsets=zone,
        wanted=wanted,
        org_id=ORG,
        domain_name="example.com",
        zone_name="example.com",
        marker_key=KEY,
    )


def owned_a(name: str, value: str) -> list[RRset]:
    return [
        RRset(name, "A", 300, (value,)),
        RRset(f"_autoglue.{name}", "TXT", 300, (signed(name, "A"),)),
        RRset(f"extdns-{name}", "TXT", 300, (POISON_VALUE,)),
        RRset(f"extdns-a-{name}", "TXT", 300, (POISON_VALUE,)),
    ]


def wanted(name: str, rtype: str, value: str) -> Wanted:
    return Wanted(REC, name, rtype, None, (value,), "f" * 64)


def test_a_renamed_record_set_is_deleted_at_its_old_name_and_created_at_the_new_one():
    result = plan(
        owned_a("old.example.com", "192.0.2.1"), [wanted("new.example.com", "A", "192.0.2.1")]
    )
    actions = {(c.action, c.rrset.name, c.rrset.type) for c in result.changes}
    assert {
        ("DELETE", "old.example.com", "A"),
        ("DELETE", "_autoglue.old.example.com", "TXT"),
        ("DELETE", "extdns-old.example.com", "TXT"),
        ("DELETE", "extdns-a-old.example.com", "TXT"),
        ("CREATE", "new.example.com", "A"),
        ("CREATE", "_autoglue.new.example.com", "TXT"),
    } <= actions
    assert not result.conflicts


def test_a_type_change_deletes_the_old_type_before_writing_the_new_one_in_one_group():
    result = plan(
        owned_a("www.example.com", "192.0.2.1"),
        [wanted("www.example.com", "CNAME", "x.example.net")],
    )
    assert len(result.groups) == 1
    actions = [(c.action, c.rrset.type, c.rrset.name) for c in result.groups[0]]
    assert actions.index(("DELETE", "A", "www.example.com")) < actions.index(
        ("CREATE", "CNAME", "www.example.com")
    )


def test_a_cname_next_to_a_foreign_record_is_refused():
    result = plan(
        [RRset("www.example.com", "TXT", 300, ('"foreign"',))],
        [wanted("www.example.com", "CNAME", "x.example.net")],
    )
    assert not result.changes
    assert "cname_conflict" in result.conflicts[0].reason


def test_nothing_to_do_is_an_empty_plan():
    zone = owned_a("api.example.com", "192.0.2.1")
    item = wanted("api.example.com", "A", "192.0.2.1")
    marker = marker_value(org_id=ORG, wanted=item, key=KEY)
    zone[1] = RRset("_autoglue.api.example.com", "TXT", 300, (marker,))
    assert plan(zone, [item]).changes == []


def test_foreign_records_and_other_domains_markers_are_never_deleted():
    zone = [
        RRset("foreign.example.com", "A", 300, ("198.51.100.1",)),
        RRset("_autoglue.x.example.com", "TXT", 300, ('"v=ag1 org=someone-else rec=1 type=A"',)),
        RRset("x.example.com", "A", 300, ("198.51.100.2",)),
        *owned_a("elsewhere.example.org", "192.0.2.9"),  # not in this domain
    ]
    assert plan(zone, []).changes == []


def test_an_unsigned_marker_of_a_record_set_no_longer_wanted_deletes_nothing():
    # What the original left for a record set deleted since (no `type=`, no signature, its
    # guards): it could be anyone's writing, so the A record stays, and so does the marker.
    zone = owned_a("old.example.com", "192.0.2.1")
    zone[1] = RRset("_autoglue.old.example.com", "TXT", 300, (f'"v=ag1 org={ORG} rec={REC} fp=0"',))
    assert plan(zone, []).changes == []


def test_an_unsigned_marker_of_a_wanted_record_set_is_adopted_and_signed():
    zone = owned_a("api.example.com", "192.0.2.1")
    zone[1] = RRset("_autoglue.api.example.com", "TXT", 300, (f'"v=ag1 org={ORG} rec={REC} fp=0"',))
    item = wanted("api.example.com", "A", "192.0.2.2")
    result = plan(zone, [item])
    assert not result.conflicts
    (marker,) = [c for c in result.changes if c.kind == "marker"]
    assert marker.rrset.values == (marker_value(org_id=ORG, wanted=item, key=KEY),)


def test_a_signed_marker_under_another_key_or_for_another_type_is_not_trusted():
    zone = owned_a("api.example.com", "192.0.2.1")
    other_key = marker_mac(b"x" * 32, org_id=ORG, record_id=REC, rtype="A", fqdn="api.example.com")
    for value in (
        f'"v=ag1 org={ORG} rec={REC} fp=0 type=A mac={other_key}"',
        signed("api.example.com", "MX").replace("type=MX", "type=A"),
    ):
        zone[1] = RRset("_autoglue.api.example.com", "TXT", 300, (value,))
        assert plan(zone, []).changes == []
        result = plan(zone, [wanted("api.example.com", "A", "192.0.2.2")])
        assert result.changes == [] and "did not write" in result.conflicts[0].reason

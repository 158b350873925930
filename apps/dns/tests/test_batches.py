"""Batches against Route 53's real limits, which moto does not enforce: at most 1,000
ResourceRecord elements and 32,000 value characters per ChangeResourceRecordSets, UPSERT
counting twice in both."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from apps.dns.clients import RRset
from apps.dns.reconcile import (
    CREATE,
    DELETE,
    MAX_BATCH_CHARS,
    MAX_BATCH_RECORDS,
    UPSERT,
    Change,
    Wanted,
    batch_weight,
    build_batches,
    compute_plan,
    lower_bound,
)

ORG = "11111111-1111-1111-1111-111111111111"


def wanted(n: int) -> list[Wanted]:
    return [
        Wanted(
            record_id=f"00000000-0000-0000-0000-{i:012d}",
            fqdn=f"host{i}.example.com",
            type="A",
            ttl=300,
            values=(f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}",),
            fingerprint=f"{i:064x}",
        )
        for i in range(n)
    ]


def assert_within_limits(batches: list[list[Change]]) -> None:
    for batch in batches:
        records, chars = batch_weight(batch)
        assert records <= MAX_BATCH_RECORDS, records
        assert chars <= MAX_BATCH_CHARS, chars


def test_ten_thousand_new_records_fit_route53s_limits_near_the_lower_bound():
    plan = compute_plan(
        zone_rrsets=[],
        wanted=wanted(10_000),
        org_id=ORG,
        domain_name="example.com",
        zone_name="example.com",
        marker_key=b"test-marker-key-0123456789abcdef",
    )
    assert len(plan.changes) == 40_000  # record, marker, two external-dns guards each
    batches = build_batches(plan.groups)
    assert_within_limits(batches)
    assert len(batches) <= 1.05 * lower_bound(plan.changes) + 1
    # A name's changes (record, marker, guards) travel together in one atomic batch.
    for batch in batches:
        names = {
            c.rrset.name.removeprefix("_autoglue.")
            .removeprefix("extdns-a-")
            .removeprefix("extdns-")
            for c in batch
        }
        for name in names:
            assert sum(1 for c in batch if c.rrset.name.endswith(name)) >= 1
    assert [c for batch in batches for c in batch] == plan.changes


def test_upserts_count_twice():
    changes = [
        [Change(UPSERT, RRset(f"h{i}.example.com", "A", 300, ("203.0.113.1",)), "record")]
        for i in range(600)
    ]
    batches = build_batches(changes)
    assert_within_limits(batches)
    assert len(batches) == 2  # 1,200 weighted elements
    long_values = [
        [Change(UPSERT, RRset(f"t{i}.example.com", "TXT", 300, ('"' + "x" * 998 + '"',)), "record")]
        for i in range(40)
    ]
    assert len(build_batches(long_values)) == 3  # 80,000 weighted characters


def test_an_upsert_too_big_for_one_batch_becomes_a_delete_then_a_create():
    values = tuple(f'"{i:04d}' + "y" * 95 + '"' for i in range(200))  # 20,200 characters
    old = RRset("big.example.com", "TXT", 300, values[:1])
    change = Change(UPSERT, RRset("big.example.com", "TXT", 300, values), "record", previous=old)
    batches = build_batches([[change]])
    assert_within_limits(batches)
    # Counted once each, the pair fits in one batch, still atomic and in this order.
    assert [[c.action for c in batch] for batch in batches] == [[DELETE, CREATE]]


value_text = st.text(alphabet="abcdefghij", min_size=1, max_size=400)
rrset = st.builds(
    lambda i, vs: RRset(f"n{i}.example.com", "TXT", 300, tuple(f'"{v}"' for v in vs)),
    st.integers(0, 10_000),
    st.lists(value_text, min_size=1, max_size=30),
)
group = st.lists(
    st.builds(
        lambda a, r: Change(a, r, "record"), st.sampled_from([CREATE, UPSERT, DELETE]), rrset
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(group, max_size=60))
def test_no_batch_ever_breaks_a_limit_and_every_change_is_sent_once(groups):
    batches = build_batches(groups)
    assert_within_limits(batches)
    sent = [c for batch in batches for c in batch]
    assert len(sent) == len([c for g in groups for c in g])
    assert all(batch for batch in batches)

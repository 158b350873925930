"""The reconciler's pure part: from what Route 53 holds and what Autoglue wants, the changes to
make (with an ownership verdict for each), packed into as few batches as Route 53 allows.

No database and no network here, so the rules are tested directly and the plan endpoint and the
job compute exactly the same thing.

Ownership (compatible with the original's markers, see docs/dns.md):
- next to every record set it owns at `<fqdn>`, Autoglue keeps a TXT marker at
  `_autoglue.<fqdn>` with one value per owned record set:
  `v=ag1 org=<org id> rec=<record set id> fp=<16 hex> type=<TYPE>` (the original's values have
  no `type=`; such a value is matched through its record id or the guard records below);
- and the external-dns "poison" TXT records `extdns-<fqdn>` and `extdns-<type>-<fqdn>` naming
  the owner `autoglue-lock`, so an external-dns instance treats the names as someone else's;
- a marker value is trusted only when Autoglue signed it for that very record: `mac=` is an
  HMAC-SHA256 under the organization's marker key over (organization, record set id, type, full
  name). An unsigned value (the original's, or one from before signing) is trusted only for a
  record set of this organization wanted at that very name, so at most it lets Autoglue write
  what it wants there anyway, never delete. Anything else at a marker name (another
  organization's value, a forged or copied one, a value that is no marker) makes every wanted
  record set at that name a conflict, and nothing at that name is written or deleted;
- a record set in the zone is Autoglue's only when a trusted marker value says so; anything else
  is foreign and never changed or deleted. A wanted record set that would touch a foreign one,
  or that external-dns claims, is a conflict reported on the record set.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from apps.dns.clients import RRset
from apps.dns.names import (
    DEFAULT_TTL,
    EXTDNS_PREFIX,
    MARKER_PREFIX,
    compare_value,
    reserved_label,
)

# Route 53's limits per ChangeResourceRecordSets request; UPSERT counts twice in both.
MAX_BATCH_RECORDS = 1000
MAX_BATCH_CHARS = 32000

GUARD_TTL = 300
MARKER_TTL = 300
POISON_VALUE = (
    '"heritage=external-dns,external-dns/owner=autoglue-lock,external-dns/resource=manual/autoglue"'
)
LOCK_OWNER = "autoglue-lock"

CREATE, UPSERT, DELETE = "CREATE", "UPSERT", "DELETE"
_ACTION_WORDS = {CREATE: "create", UPSERT: "update", DELETE: "delete"}


@dataclass(frozen=True)
class Wanted:
    """A record set Autoglue wants in the zone (already in wire form)."""

    record_id: str
    fqdn: str
    type: str
    ttl: int | None
    values: tuple[str, ...]
    fingerprint: str

    @property
    def effective_ttl(self) -> int:
        return self.ttl if self.ttl is not None else DEFAULT_TTL


@dataclass
class Change:
    """One change of a batch. `record_id` names the record set it serves (markers and guards
    serve the record sets at their name: `record_ids`)."""

    action: str
    rrset: RRset
    kind: str  # "record", "marker" or "guard"
    record_ids: tuple[str, ...] = ()
    previous: RRset | None = None

    @property
    def weight_records(self) -> int:
        return len(self.rrset.values) * (2 if self.action == UPSERT else 1)

    @property
    def weight_chars(self) -> int:
        chars = sum(len(value) for value in self.rrset.values)
        return chars * (2 if self.action == UPSERT else 1)

    def to_aws(self) -> dict[str, Any]:
        return {"Action": self.action, "ResourceRecordSet": self.rrset.to_aws()}

    def describe(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "action": _ACTION_WORDS[self.action],
            "kind": self.kind,
            "name": self.rrset.name,
            "type": self.rrset.type,
            "ttl": self.rrset.ttl,
            "values": list(self.rrset.values),
            "owner": "autoglue",
            "record_set_ids": list(self.record_ids),
        }
        if self.previous is not None:
            item["previous"] = {"ttl": self.previous.ttl, "values": list(self.previous.values)}
        return item

    def log_line(self) -> str:
        values = " ".join(self.rrset.values)
        if len(values) > 200:
            values = values[:200] + "..."
        return f"{self.action} {self.rrset.type} {self.rrset.name} ttl={self.rrset.ttl} {values}"


@dataclass
class Conflict:
    record_id: str
    fqdn: str
    type: str
    reason: str

    def describe(self) -> dict[str, Any]:
        return {
            "action": "conflict",
            "kind": "record",
            "name": self.fqdn,
            "type": self.type,
            "owner": "external",
            "record_set_ids": [self.record_id],
            "reason": self.reason,
        }


@dataclass
class Plan:
    """The outcome of comparing a zone with the wanted record sets."""

    groups: list[list[Change]] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    # Wanted record sets Autoglue owns after this plan (already right, or changed by it).
    accepted: list[str] = field(default_factory=list)

    @property
    def changes(self) -> list[Change]:
        return [change for group in self.groups for change in group]

    def describe(self) -> list[dict[str, Any]]:
        return [c.describe() for c in self.changes] + [c.describe() for c in self.conflicts]

    def summary(self) -> dict[str, int]:
        counts = {"create": 0, "update": 0, "delete": 0, "conflict": len(self.conflicts)}
        for change in self.changes:
            if change.kind == "record":
                counts[_ACTION_WORDS[change.action]] += 1
        counts["changes"] = len(self.changes)
        return counts


# --- markers ----------------------------------------------------------------------------------


def _unquote(value: str) -> str:
    """The text of a TXT value: its quoted strings joined (escapes of `"` and `\\` undone)."""
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', value)
    if not parts:
        return value
    return "".join(re.sub(r"\\(.)", r"\1", part) for part in parts)


# 128 bits of HMAC-SHA256, hex: enough against forgery, short enough for a TXT string.
MAC_HEX_CHARS = 32


def marker_mac(key: bytes, *, org_id: str, record_id: str, rtype: str, fqdn: str) -> str:
    """The signature of a marker value: it binds the organization, the record set, its type and
    the name the marker stands for, so a value copied to another name or type is worthless."""
    message = "\0".join(
        ("autoglue-dns-marker-v1", org_id.lower(), record_id.lower(), rtype.upper(), fqdn.lower())
    )
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()[:MAC_HEX_CHARS]


def marker_value(*, org_id: str, wanted: Wanted, key: bytes) -> str:
    mac = marker_mac(
        key, org_id=org_id, record_id=wanted.record_id, rtype=wanted.type, fqdn=wanted.fqdn
    )
    return (
        f'"v=ag1 org={org_id} rec={wanted.record_id} fp={wanted.fingerprint[:16]} '
        f'type={wanted.type} mac={mac}"'
    )


@dataclass(frozen=True)
class MarkerEntry:
    org: str
    rec: str
    type: str | None
    raw: str
    mac: str | None = None


def parse_marker(value: str) -> MarkerEntry | None:
    text = _unquote(value)
    if not text.startswith("v=ag1"):
        return None
    fields = dict(part.split("=", 1) for part in text.split() if "=" in part)
    if "org" not in fields or "rec" not in fields:
        return None
    return MarkerEntry(
        org=fields["org"].lower(),
        rec=fields["rec"].lower(),
        type=fields.get("type", "").upper() or None,
        raw=value,
        mac=fields.get("mac", "").lower() or None,
    )


def external_dns_owner(rrset: RRset | None) -> str | None:
    """The owner an external-dns TXT registry record names, or None if it is not one."""
    if rrset is None or rrset.type != "TXT":
        return None
    for value in rrset.values:
        fields = dict(part.split("=", 1) for part in _unquote(value).split(",") if "=" in part)
        if fields.get("heritage") == "external-dns":
            return fields.get("external-dns/owner", "")
    return None


def in_zone(name: str, zone_name: str) -> bool:
    return name == zone_name or name.endswith("." + zone_name)


def in_domain(name: str, domain_name: str) -> bool:
    return name == domain_name or name.endswith("." + domain_name)


def valid_name(name: str) -> bool:
    """Whether Route 53 accepts the name: 253 characters, labels of 1-63 (a guard's prefixed
    label can outgrow 63 while the record's own name is fine)."""
    return len(name) <= 253 and all(0 < len(label) <= 63 for label in name.split("."))


# --- the plan ---------------------------------------------------------------------------------


def _same(current: RRset, wanted: RRset) -> bool:
    if current.ttl != wanted.ttl:
        return False
    left = sorted(compare_value(current.type, v) for v in current.values)
    right = sorted(compare_value(wanted.type, v) for v in wanted.values)
    return left == right


def _put(
    group: list[Change], current: RRset | None, wanted: RRset, kind: str, ids: tuple[str, ...]
) -> None:
    """CREATE when absent, UPSERT when different, nothing when equal."""
    if current is None:
        group.append(Change(CREATE, wanted, kind, ids))
    elif current.special or not _same(current, wanted):
        group.append(Change(UPSERT, wanted, kind, ids, previous=current))


def _remove(group: list[Change], current: RRset | None, kind: str, ids: tuple[str, ...]) -> None:
    if current is not None and not current.special:
        group.append(Change(DELETE, current, kind, ids))


class _Zone:
    def __init__(self, rrsets: Iterable[RRset]) -> None:
        self.by_key: dict[tuple[str, str], RRset] = {}
        self.types_at: dict[str, set[str]] = defaultdict(set)
        for rrset in rrsets:
            self.by_key[rrset.key] = rrset
            self.types_at[rrset.name].add(rrset.type)

    def get(self, name: str, rtype: str) -> RRset | None:
        return self.by_key.get((name, rtype))

    def is_lock(self, name: str) -> bool:
        return external_dns_owner(self.get(name, "TXT")) == LOCK_OWNER


def compute_plan(
    *,
    zone_rrsets: Iterable[RRset],
    wanted: Sequence[Wanted],
    org_id: str,
    domain_name: str,
    zone_name: str,
    marker_key: bytes,
    sibling_ids: frozenset[str] = frozenset(),
) -> Plan:
    """Compare the zone with the wanted record sets of one domain (all of them: a record set
    of the domain that is not wanted any more is simply absent) and decide every change.

    `marker_key` is the organization's key that signs its marker values (and checks them).
    `sibling_ids` are the record sets of the organization's other domains in the same zone
    (e.g. `dev.example.com` next to `example.com`): their marker entries name this
    organization but are not this domain's to change or delete, so they are kept as they are."""
    zone = _Zone(zone_rrsets)
    org_id = org_id.lower()
    wanted_at: dict[str, dict[str, Wanted]] = defaultdict(dict)
    for item in wanted:
        wanted_at[item.fqdn][item.type] = item
    trust = _Trust(
        key=marker_key,
        org_id=org_id,
        wanted_ids={item.record_id: item for item in wanted},
        sibling_ids=sibling_ids,
    )

    # Marker names under the domain, read once: their values sorted by trust.
    markers: dict[str, _MarkerSet] = {}
    for (name, rtype), rrset in zone.by_key.items():
        if rtype != "TXT" or not name.startswith(MARKER_PREFIX):
            continue
        target = name[len(MARKER_PREFIX) :]
        if in_domain(target, domain_name):
            markers[target] = trust.sort(target, rrset.values)

    plan = Plan()
    # Names where a trusted marker says this domain owns something.
    owned_names = {n for n, found in markers.items() if found.ours}
    for fqdn in sorted(set(wanted_at) | owned_names):
        group = _plan_name(
            zone=zone,
            fqdn=fqdn,
            wanted=wanted_at.get(fqdn, {}),
            found=markers.get(fqdn, _MarkerSet()),
            trust=trust,
            zone_name=zone_name,
            plan=plan,
        )
        if group:
            plan.groups.append(group)
    return plan


@dataclass
class _MarkerSet:
    """The values at one marker name, by what Autoglue may do with them."""

    ours: list[MarkerEntry] = field(default_factory=list)  # this domain's, trusted
    siblings: set[str] = field(default_factory=set)  # the organization's other domains'
    foreign_orgs: set[str] = field(default_factory=set)  # other organizations named
    untrusted: list[str] = field(default_factory=list)  # everything Autoglue did not write


@dataclass(frozen=True)
class _Trust:
    """Decides which marker values at a name Autoglue wrote for this organization."""

    key: bytes
    org_id: str
    wanted_ids: dict[str, Wanted]
    sibling_ids: frozenset[str]

    def signed(self, entry: MarkerEntry, fqdn: str) -> bool:
        if entry.mac is None or entry.type is None:
            return False
        expected = marker_mac(
            self.key, org_id=self.org_id, record_id=entry.rec, rtype=entry.type, fqdn=fqdn
        )
        return hmac.compare_digest(entry.mac, expected)

    def unsigned_ok(self, entry: MarkerEntry, fqdn: str) -> bool:
        """An unsigned value (the original's, or from before signing) stands only for a record
        set of ours wanted at this very name and type: it can let Autoglue keep writing what it
        wants anyway, never delete anything."""
        item = self.wanted_ids.get(entry.rec)
        return (
            entry.mac is None
            and item is not None
            and item.fqdn == fqdn
            and entry.type in (None, item.type)
        )

    def sort(self, fqdn: str, values: Iterable[str]) -> _MarkerSet:
        found = _MarkerSet()
        for value in values:
            entry = parse_marker(value)
            if entry is None:
                found.untrusted.append(value)
            elif entry.org != self.org_id:
                found.foreign_orgs.add(entry.org)
                found.untrusted.append(value)
            elif entry.rec in self.sibling_ids and (entry.mac is None or self.signed(entry, fqdn)):
                found.siblings.add(value)
            elif self.signed(entry, fqdn) or self.unsigned_ok(entry, fqdn):
                found.ours.append(entry)
            else:
                found.untrusted.append(value)
        return found

    def entry_type(self, entry: MarkerEntry) -> str:
        """The type a trusted value stands for (an unsigned one may not say: its record set's)."""
        return entry.type or self.wanted_ids[entry.rec].type

    def owned_types(self, ours: list[MarkerEntry]) -> set[str]:
        return {self.entry_type(entry) for entry in ours}


def _plan_name(
    *,
    zone: _Zone,
    fqdn: str,
    wanted: dict[str, Wanted],
    found: _MarkerSet,
    trust: _Trust,
    zone_name: str,
    plan: Plan,
) -> list[Change]:
    ours = found.ours
    owned = trust.owned_types(ours)
    name_guard = f"{EXTDNS_PREFIX}{fqdn}"
    name_claim = _claim(zone, name_guard) or _claim(zone, fqdn)
    marker_name = f"{MARKER_PREFIX}{fqdn}"

    accepted: dict[str, Wanted] = {}
    for rtype, item in sorted(wanted.items()):
        reason = _refusal(zone, fqdn, rtype, item, owned, found, name_claim, wanted)
        if reason:
            plan.conflicts.append(Conflict(item.record_id, fqdn, rtype, reason))
        else:
            accepted[rtype] = item
    if found.untrusted:
        # The marker holds values Autoglue did not write for this organization: it is not ours
        # to rewrite (their author would lose them), and what it says is not ours to act on.
        # Every wanted record set here is a conflict (above); nothing at this name changes.
        return []

    deletes = _unwanted(zone, fqdn, owned - set(wanted), ours)
    puts: list[Change] = []

    for rtype, item in accepted.items():
        record = RRset(fqdn, rtype, item.effective_ttl, item.values)
        _put(puts, zone.get(fqdn, rtype), record, "record", (item.record_id,))
        guard = f"{EXTDNS_PREFIX}{rtype.lower()}-{fqdn}"
        if in_zone(guard, zone_name) and valid_name(guard):
            poison = RRset(guard, "TXT", GUARD_TTL, (POISON_VALUE,))
            _put(puts, zone.get(guard, "TXT"), poison, "guard", (item.record_id,))
        plan.accepted.append(item.record_id)

    # The marker: ours rewritten (signed) for what we own after this plan (the accepted record
    # sets, and owned ones a conflict keeps in place); the organization's other domains' values
    # kept as they are.
    kept_owned = {e.raw for e in ours if trust.entry_type(e) in set(wanted) - set(accepted)}
    current_marker = zone.get(marker_name, "TXT")
    values = sorted(
        found.siblings
        | kept_owned
        | {
            marker_value(org_id=trust.org_id, wanted=item, key=trust.key)
            for item in accepted.values()
        }
    )
    ids = tuple(item.record_id for item in accepted.values())
    if values:
        _put(
            puts,
            current_marker,
            RRset(marker_name, "TXT", MARKER_TTL, tuple(values)),
            "marker",
            ids,
        )
    else:
        _remove(deletes, current_marker, "marker", tuple(e.rec for e in ours))

    name_guard_rrset = zone.get(name_guard, "TXT")
    if accepted and in_zone(name_guard, zone_name) and valid_name(name_guard):
        poison = RRset(name_guard, "TXT", GUARD_TTL, (POISON_VALUE,))
        _put(puts, name_guard_rrset, poison, "guard", ids)
    elif not values and zone.is_lock(name_guard):
        _remove(deletes, name_guard_rrset, "guard", tuple(e.rec for e in ours))
    # Deletions first: a CNAME may replace an A record at the same name in one batch.
    return deletes + puts


def _unwanted(zone: _Zone, fqdn: str, rtypes: set[str], ours: list[MarkerEntry]) -> list[Change]:
    """Deletes of owned record sets nobody wants any more, with their type guards (conflicted
    ones stay as they are)."""
    deletes: list[Change] = []
    for rtype in sorted(rtypes):
        ids = tuple(e.rec for e in ours if e.type == rtype)
        _remove(deletes, zone.get(fqdn, rtype), "record", ids)
        guard = f"{EXTDNS_PREFIX}{rtype.lower()}-{fqdn}"
        if zone.is_lock(guard):
            _remove(deletes, zone.get(guard, "TXT"), "guard", ids)
    return deletes


def _claim(zone: _Zone, name: str) -> str | None:
    """The owner external-dns's registry TXT at `name` names, or None when there is none: our
    own lock, or a TXT record set Autoglue wrote for a tenant (a marker of ours stands next to
    it; external-dns never writes one) whatever its value says."""
    owner = external_dns_owner(zone.get(name, "TXT"))
    if owner in (None, LOCK_OWNER):
        return None
    marker = zone.get(f"{MARKER_PREFIX}{name}", "TXT")
    if marker is not None and any(parse_marker(value) for value in marker.values):
        return None
    return owner


def _type_claim(
    zone: _Zone, fqdn: str, rtype: str, owned: set[str], name_claim: str | None
) -> str | None:
    """The owner external-dns's registry says holds `rtype` at `fqdn`, or None.

    Its registry names: with our `extdns-` prefix (the original's), and its own default new
    format `<type>-<fqdn>` (no prefix), whose older format is `<fqdn>` itself (`name_claim`).
    A type our marker proves we own stays ours: a TXT at such a name appearing later (anyone
    sharing the zone can make `a-api`) must not freeze a record set we already manage."""
    if rtype in owned:
        return None
    return (
        name_claim
        or _claim(zone, f"{EXTDNS_PREFIX}{rtype.lower()}-{fqdn}")
        or _claim(zone, f"{rtype.lower()}-{fqdn}")
    )


def _refusal(
    zone: _Zone,
    fqdn: str,
    rtype: str,
    item: Wanted,
    owned: set[str],
    found: _MarkerSet,
    name_claim: str | None,
    wanted: dict[str, Wanted],
) -> str:
    """Why a wanted record set may not be written, or "" when it may."""
    label = reserved_label(fqdn)
    if label is not None:
        # Only rows from before such names were refused get here: their records would be (or
        # overwrite) Autoglue's own markers and guards, another record set's included.
        return (
            f"ownership_conflict: {fqdn} has the reserved label {label!r} (Autoglue's markers "
            "and external-dns guards); Autoglue never writes such a name: delete this record set "
            "or its domain"
        )
    claim = _type_claim(zone, fqdn, rtype, owned, name_claim)
    if claim is not None:
        return (
            f"ownership_conflict: external-dns (owner {claim or 'unknown'}) claims {fqdn}; "
            "Autoglue leaves it alone"
        )
    if found.foreign_orgs:
        return (
            f"ownership_conflict: {fqdn} is managed by another organization's Autoglue "
            f"(marker at {MARKER_PREFIX}{fqdn}); Autoglue leaves it alone"
        )
    if found.untrusted:
        return (
            f"ownership_conflict: TXT {MARKER_PREFIX}{fqdn} holds values Autoglue did not write "
            "for this organization (not a marker, or not signed by it for this record); Autoglue "
            "neither trusts nor overwrites them: remove them in Route 53 if they are not wanted"
        )
    for guard in (f"{EXTDNS_PREFIX}{fqdn}", f"{EXTDNS_PREFIX}{rtype.lower()}-{fqdn}"):
        held = zone.get(guard, "TXT")
        if held is not None and external_dns_owner(held) is None:
            # The guard would be written over a TXT record that is neither ours nor external-dns's.
            return (
                f"ownership_conflict: TXT {guard} exists in Route 53 and is not an external-dns "
                "record; Autoglue will not overwrite it"
            )
    existing = zone.get(fqdn, rtype)
    if existing is not None and (rtype not in owned or existing.special):
        return (
            f"ownership_conflict: {rtype} {fqdn} already exists in Route 53 and was not "
            "created by Autoglue; delete it there or choose another name"
        )
    # (A CNAME is never wanted at the apex, whose SOA and NS would otherwise count here.)
    others = {t for t in zone.types_at.get(fqdn, set()) if t not in owned}
    if rtype == "CNAME" and others:
        return (
            f"cname_conflict: {fqdn} already has {', '.join(sorted(others))} record sets in "
            "Route 53 that are not Autoglue's; a CNAME must be alone at its name"
        )
    if rtype != "CNAME" and "CNAME" in zone.types_at.get(fqdn, set()) and "CNAME" not in owned:
        return f"cname_conflict: {fqdn} has a CNAME in Route 53 that is not Autoglue's"
    return ""


# --- batches ----------------------------------------------------------------------------------


def batch_weight(changes: Sequence[Change]) -> tuple[int, int]:
    """(ResourceRecord elements, value characters) as Route 53 counts them, UPSERT twice."""
    return (sum(c.weight_records for c in changes), sum(c.weight_chars for c in changes))


def lower_bound(changes: Sequence[Change]) -> int:
    """The fewest ChangeResourceRecordSets calls Route 53's limits allow for these changes."""
    records, chars = batch_weight(changes)
    if not changes:
        return 0
    return max(-(-records // MAX_BATCH_RECORDS), -(-chars // MAX_BATCH_CHARS), 1)


def _fits(records: int, chars: int) -> bool:
    return records <= MAX_BATCH_RECORDS and chars <= MAX_BATCH_CHARS


def _split_oversized(group: list[Change]) -> list[list[Change]]:
    """A name's changes normally go in one batch (atomic: record, marker and guards together).
    A group too big for one batch is sent change by change, and an UPSERT too big for one
    batch as a DELETE followed by a CREATE."""
    if _fits(*batch_weight(group)):
        return [group]
    pieces: list[list[Change]] = []
    for change in group:
        if _fits(change.weight_records, change.weight_chars):
            pieces.append([change])
        elif change.action == UPSERT and change.previous is not None:
            pieces.append([Change(DELETE, change.previous, change.kind, change.record_ids)])
            pieces.append([Change(CREATE, change.rrset, change.kind, change.record_ids)])
        else:
            pieces.append([change])  # refused by Route 53; reported on its record sets
    return pieces


def build_batches(groups: Sequence[list[Change]]) -> list[list[Change]]:
    """Pack the groups, in order, into batches within Route 53's limits: each batch is filled
    until the next group would not fit. Groups are small next to a batch, so this stays within
    one group's size of the bound per batch."""
    return [[change for piece in batch for change in piece] for batch in batch_pieces(groups)]


def batch_pieces(groups: Sequence[list[Change]]) -> list[list[list[Change]]]:
    """`build_batches` with each batch's groups (or pieces of an oversized one) kept apart, so
    a batch Route 53 refuses can be sent again in parts."""
    batches: list[list[list[Change]]] = []
    current: list[list[Change]] = []
    records = chars = 0
    for group in groups:
        for piece in _split_oversized(group):
            piece_records, piece_chars = batch_weight(piece)
            if current and not _fits(records + piece_records, chars + piece_chars):
                batches.append(current)
                current, records, chars = [], 0, 0
            current.append(piece)
            records += piece_records
            chars += piece_chars
    if current:
        batches.append(current)
    return batches


def digest(items: Iterable[Any]) -> str:
    """A stable SHA-256 of JSON-able items (the zone's contents, the wanted record sets)."""
    hasher = hashlib.sha256()
    for item in items:
        hasher.update(json.dumps(item, sort_keys=True, separators=(",", ":")).encode())
        hasher.update(b"\n")
    return hasher.hexdigest()


def zone_digest(rrsets: Iterable[RRset]) -> str:
    return digest(sorted([r.name, r.type, r.ttl, sorted(r.values), r.special] for r in rrsets))


def wanted_digest(wanted: Iterable[Wanted]) -> str:
    return digest(
        sorted([w.record_id, w.fqdn, w.type, w.ttl, list(w.values), w.fingerprint] for w in wanted)
    )

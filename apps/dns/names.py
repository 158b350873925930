"""DNS names and record values: one stored form, validated where they enter.

Domain names are stored lower case, without a trailing dot, in their IDNA (ASCII) form. Record
names are stored relative to their domain ("@" for the apex). Values are stored as the client
gave them (so a client that reads back what it wrote sees no difference) after validation; the
form Route 53 wants (quoted TXT strings, trailing dots ignored) is produced by `wire_values`.
Every error is a `NameError_` with the field it concerns, turned into a 400 by the service.
"""

from __future__ import annotations

import ipaddress
import re

import idna

APEX = "@"
# Names Autoglue writes next to every record it owns (its marker and the external-dns guard).
# No label of a domain or record name may take them: a name like `_autoglue.www.<zone>` (as a
# domain, or under one) would let a tenant write another record set's marker.
MARKER_PREFIX = "_autoglue."
EXTDNS_PREFIX = "extdns-"
_RESERVED_LABEL_PREFIXES = (MARKER_PREFIX[:-1], EXTDNS_PREFIX)

MIN_TTL = 1
MAX_TTL = 86400
DEFAULT_TTL = 300
MAX_VALUES = 400  # Route 53's limit of values per record set
MAX_VALUE_CHARS = 1024  # the contract's limit per value
TXT_STRING_BYTES = 255
# Route 53 accepts at most 32,000 characters of values in one change batch, so a record set
# with more could never be written, whatever the batching.
MAX_SET_CHARS = 32000
# Route 53's limit on one value as sent (a TXT value grows when escaped: 4 characters a byte).
MAX_WIRE_VALUE_CHARS = 4000

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_HOST_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
# One double-quoted character string, `\"` and `\ddd` escapes in it (a TXT string, a CAA value).
_QUOTED = r'"((?:[^"\\]|\\.)*)"'
# The property tags RFC 8659 defines, and the two later RFCs add (9495: issuemail; issuevmc,
# used for BIMI): Route 53 refuses others, and with them the whole change batch.
CAA_TAGS = ("issue", "issuewild", "iodef", "issuemail", "issuevmc")
# A CAA value is one quoted string, or one token with no quote or backslash to misread.
_CAA_VALUE = re.compile(rf"{_QUOTED}|[^\s\"\\]+")
# external-dns's TXT registry records say this; the reconcile reads them as external-dns's claim.
_EXTERNAL_DNS_HERITAGE = "heritage=external-dns"


def reserved_label(name: str) -> str | None:
    """The first label of `name` that starts with a prefix Autoglue reserves for its markers and
    guards (`_autoglue`, `extdns-`), or None."""
    for label in name.lower().split("."):
        if label.startswith(_RESERVED_LABEL_PREFIXES):
            return label
    return None


class InvalidName(ValueError):
    """A name or value that cannot be used; `field` names the request field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _to_ascii_label(label: str, field: str) -> str:
    if label.isascii():
        return label.lower()
    try:
        return idna.encode(label, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise InvalidName(field, f"label {label!r} is not a valid internationalized name") from exc


def normalize_domain_name(value: object, *, field: str = "domain_name") -> str:
    """`Example.COM.` -> `example.com`; `bücher.de` -> `xn--bcher-kva.de`. At least two labels,
    each 1-63 characters of letters, digits, `-` and `_`, 253 characters in all."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidName(field, "is required")
    name = value.strip()
    if name.endswith("."):
        name = name[:-1]
    if name.startswith(".") or ".." in name or not name:
        raise InvalidName(field, "must not start with a dot or contain empty labels")
    labels = [_to_ascii_label(label, field) for label in name.split(".")]
    if len(labels) < 2:
        raise InvalidName(field, "must have at least two labels (e.g. example.com)")
    for label in labels:
        if not _LABEL.match(label):
            raise InvalidName(field, f"label {label!r} is not a valid DNS label")
    _refuse_reserved(labels, field)
    result = ".".join(labels)
    if len(result) > 253:
        raise InvalidName(field, "is longer than 253 characters")
    return result


def normalize_record_name(value: object, domain_name: str, *, field: str = "name") -> str:
    """A record name relative to `domain_name`: "", "@", the domain itself and a trailing-dot
    FQDN of the domain are the apex ("@"); `api.example.com` (with or without its trailing dot)
    and `api` are both `api` in the domain `example.com`. A name ending with a dot must lie in
    the domain. `*` is allowed as the whole leftmost label only."""
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise InvalidName(field, "must be a string")
    name = value.strip()
    absolute = name.endswith(".")
    name = name.removesuffix(".")
    if name in ("", APEX):
        return APEX
    if name.startswith(".") or ".." in name:
        raise InvalidName(field, "must not start with a dot or contain empty labels")
    labels = [label if label == "*" else _to_ascii_label(label, field) for label in name.split(".")]
    lowered = ".".join(labels)
    if lowered == domain_name:
        return APEX
    suffix = "." + domain_name
    if lowered.endswith(suffix):
        lowered = lowered[: -len(suffix)]
    elif absolute:
        raise InvalidName(field, f"{value!r} is not inside the domain {domain_name}")
    _check_relative_labels(lowered.split("."), field)
    # The ownership marker `_autoglue.<fqdn>` must itself be a valid name (253 characters).
    if len(lowered) + 1 + len(domain_name) > 253 - len(MARKER_PREFIX):
        raise InvalidName(
            field, f"the full name is longer than {253 - len(MARKER_PREFIX)} characters"
        )
    return lowered


def _check_relative_labels(labels: list[str], field: str) -> None:
    for index, label in enumerate(labels):
        if label == "*" and index == 0:
            continue
        if not _LABEL.match(label):
            raise InvalidName(field, f"label {label!r} is not a valid DNS label")
    _refuse_reserved(labels, field)


def _refuse_reserved(labels: list[str], field: str) -> None:
    found = reserved_label(".".join(labels))
    if found is not None:
        raise InvalidName(
            field,
            f"label {found!r} is reserved: labels starting with _autoglue or extdns- are "
            "Autoglue's ownership markers and external-dns guards",
        )


def fqdn(name: str, domain_name: str) -> str:
    """The full name without trailing dot (`api.example.com`, or the domain for the apex)."""
    return domain_name if name in ("", APEX) else f"{name}.{domain_name}"


def _hostname(value: str, field: str) -> str:
    """The host name in its IDNA (ASCII) form, lower case, without trailing dot: the form
    Route 53 stores, so `bücher.example` is sent as `xn--bcher-kva.example`."""
    host = value.strip().lower()
    if host.endswith("."):
        host = host[:-1]
    if not host or ".." in host or len(host) > 253:
        raise InvalidName(field, f"{value!r} is not a host name")
    labels: list[str] = []
    for index, label in enumerate(host.split(".")):
        if label == "*" and index == 0:
            labels.append(label)
            continue
        ascii_label = _to_ascii_label(label, field)
        if not _HOST_LABEL.match(ascii_label):
            raise InvalidName(field, f"{value!r} is not a host name")
        labels.append(ascii_label)
    host = ".".join(labels)
    if len(host) > 253:
        raise InvalidName(field, f"{value!r} is not a host name")
    return host


def _uint(text: str, limit: int, what: str, field: str) -> int:
    # ASCII digits only: str.isdigit() also accepts "³" (which int() refuses) and "١٠".
    if not (text.isascii() and text.isdigit()) or int(text) > limit:
        raise InvalidName(field, f"{what} must be a number from 0 to {limit}")
    return int(text)


def _txt_strings(value: str, field: str) -> list[bytes]:
    """The character strings of a TXT value. A value wrapped in double quotes is taken as
    already quoted (`"a" "b"`: two strings, `\\"` and `\\ddd` escapes kept as they are);
    any other value is one text, split into 255-byte strings."""
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        strings: list[bytes] = []
        for match in re.finditer(rf"{_QUOTED}|(\S+)", value):
            if match.group(2) is not None:
                raise InvalidName(field, f"{value!r}: text outside double quotes")
            raw = match.group(1)
            # Byte length after unescaping: \ddd is one byte, \x is x.
            length = len(re.sub(r"\\(\d{3}|.)", "x", raw).encode("utf-8"))
            if length > TXT_STRING_BYTES:
                raise InvalidName(
                    field, f"a quoted TXT string is longer than {TXT_STRING_BYTES} bytes"
                )
            # Escapes already there stay; raw bytes outside printable ASCII get Route 53's
            # octal escape, which is how Route 53 hands them back (so a re-read compares equal).
            strings.append(
                b"".join(
                    ch.encode("ascii") if 0x20 <= ord(ch) <= 0x7E else _escape_txt(ch.encode())
                    for ch in raw
                )
            )
        if not strings:
            raise InvalidName(field, f"{value!r}: no quoted string")
        return strings
    data = value.encode("utf-8")
    return [
        _escape_txt(data[i : i + TXT_STRING_BYTES]) for i in range(0, len(data), TXT_STRING_BYTES)
    ]


def _escape_txt(chunk: bytes) -> bytes:
    """Route 53's TXT escaping: `"` and `\\` backslashed, bytes outside printable ASCII as
    \\ddd with three octal digits (Route 53 reads the digits as octal, not as RFC 1035's
    decimal: `é`, UTF-8 C3 A9, is `\\303\\251`)."""
    out = bytearray()
    for byte in chunk:
        if byte in (0x22, 0x5C):
            out += b"\\" + bytes([byte])
        elif 0x20 <= byte <= 0x7E:
            out.append(byte)
        else:
            out += f"\\{byte:03o}".encode("ascii")
    return bytes(out)


def _check_a(value: str, field: str) -> None:
    try:
        ipaddress.IPv4Address(value.strip())
    except ValueError:
        raise InvalidName(field, f"{value!r} is not an IPv4 address") from None


def _check_aaaa(value: str, field: str) -> None:
    try:
        address = ipaddress.IPv6Address(value.strip())
    except ValueError:
        raise InvalidName(field, f"{value!r} is not an IPv6 address") from None
    if address.scope_id is not None:
        # `fe80::1%eth0` parses, but a zone index means nothing in DNS and Route 53 refuses it.
        raise InvalidName(field, f"{value!r}: an IPv6 address in DNS has no zone index")


def _check_host(value: str, field: str) -> None:
    _hostname(value, field)


def _check_mx(value: str, field: str) -> None:
    parts = value.split()
    if len(parts) != 2:
        raise InvalidName(field, f"{value!r}: an MX value is '<priority> <host>'")
    _uint(parts[0], 65535, "MX priority", field)
    _hostname(parts[1], field)


def _check_srv(value: str, field: str) -> None:
    parts = value.split()
    if len(parts) != 4:
        raise InvalidName(field, f"{value!r}: an SRV value is '<priority> <weight> <port> <host>'")
    for part, what in zip(parts[:3], ("priority", "weight", "port"), strict=True):
        _uint(part, 65535, f"SRV {what}", field)
    if parts[3] != ".":
        _hostname(parts[3], field)


def _check_caa(value: str, field: str) -> None:
    """RFC 8659's `<flags> <tag> <value>`. What Route 53 would refuse is refused here: sent,
    it would fail the whole change batch, every other record set in it too."""
    parts = value.split(None, 2)
    if len(parts) < 3:
        raise InvalidName(field, f"{value!r}: a CAA value is '<flags> <tag> \"<value>\"'")
    _uint(parts[0], 255, "CAA flags", field)
    if parts[1].lower() not in CAA_TAGS:
        raise InvalidName(field, f"{value!r}: CAA tag must be one of {', '.join(CAA_TAGS)}")
    if not _CAA_VALUE.fullmatch(parts[2].strip()):
        raise InvalidName(
            field,
            f'{value!r}: the CAA value must be one double-quoted string (\\" and \\ddd '
            "escapes allowed) or one word without quotes or backslashes",
        )


def _check_txt(value: str, field: str) -> None:
    _txt_strings(value, field)
    if _EXTERNAL_DNS_HERITAGE in value.lower():
        # Autoglue and external-dns alike read such a TXT record as external-dns's registry
        # entry (its claim on a neighbouring name); a tenant has no business writing one.
        raise InvalidName(
            field,
            f"a TXT value must not contain {_EXTERNAL_DNS_HERITAGE!r} (external-dns's "
            "registry records are external-dns's to write)",
        )


_CHECKS = {
    "A": _check_a,
    "AAAA": _check_aaaa,
    "CNAME": _check_host,
    "NS": _check_host,
    "MX": _check_mx,
    "SRV": _check_srv,
    "CAA": _check_caa,
    "TXT": _check_txt,
}


def _check_route53_sizes(wire: list[str], field: str) -> None:
    """What Route 53 would refuse whatever the batching: one value over its length limit, or a
    record set whose values alone exceed a change batch's characters."""
    for index, value in enumerate(wire):
        if len(value) > MAX_WIRE_VALUE_CHARS:
            raise InvalidName(
                f"{field}[{index}]",
                f"is {len(value)} characters once escaped for Route 53, which takes "
                f"{MAX_WIRE_VALUE_CHARS}",
            )
    if sum(len(value) for value in wire) > MAX_SET_CHARS:
        raise InvalidName(
            field, f"more than {MAX_SET_CHARS} characters in all, which Route 53 cannot accept"
        )


def _has_control_characters(text: str) -> bool:
    return any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text)


def validate_values(
    rtype: str, values: object, *, field: str = "values", owner_fqdn: str | None = None
) -> list[str]:
    """Check a record set's values for its type; returns them (stripped) in the given order.
    `owner_fqdn`, the record set's full name, refuses a CNAME that points at itself."""
    if not isinstance(values, list) or not values:
        raise InvalidName(field, "at least one value is required")
    if len(values) > MAX_VALUES:
        raise InvalidName(field, f"at most {MAX_VALUES} values")
    cleaned: list[str] = []
    for index, value in enumerate(values):
        where = f"{field}[{index}]"
        if not isinstance(value, str) or not value.strip():
            raise InvalidName(where, "must be a non-empty string")
        if len(value) > MAX_VALUE_CHARS:
            raise InvalidName(where, f"is longer than {MAX_VALUE_CHARS} characters")
        text = value if rtype == "TXT" else value.strip()
        if rtype != "TXT" and _has_control_characters(text):
            # A TXT value escapes them; in any other value a line break would be taken as a
            # field separator (or a second record) by zone files, logs and Route 53 alike.
            raise InvalidName(
                where, "must not contain control characters (line breaks, tabs and the like)"
            )
        _CHECKS[rtype](text, where)
        cleaned.append(text)
    if rtype == "CNAME" and len(cleaned) != 1:
        raise InvalidName(field, "a CNAME record set has exactly one value")
    if rtype == "CNAME" and owner_fqdn is not None and _hostname(cleaned[0], field) == owner_fqdn:
        raise InvalidName(f"{field}[0]", f"a CNAME at {owner_fqdn} points at itself")
    wire = wire_values(rtype, cleaned)
    if len(set(wire)) != len(wire):
        raise InvalidName(field, "duplicate values")
    _check_route53_sizes(wire, field)
    return cleaned


def validate_ttl(ttl: object, *, field: str = "ttl") -> int | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not MIN_TTL <= ttl <= MAX_TTL:
        raise InvalidName(field, f"must be a whole number of seconds from {MIN_TTL} to {MAX_TTL}")
    return ttl


def wire_value(rtype: str, value: str) -> str:
    """The value as Route 53 stores and returns it, used both to send and to compare."""
    if rtype == "TXT":
        return " ".join(f'"{s.decode("utf-8")}"' for s in _txt_strings(value, "values"))
    if rtype == "A":
        return str(ipaddress.IPv4Address(value.strip()))
    if rtype == "AAAA":
        return str(ipaddress.IPv6Address(value.strip()))
    if rtype in ("CNAME", "NS"):
        return _hostname(value, "values")
    if rtype == "MX":
        priority, host = value.split()
        return f"{int(priority)} {_hostname(host, 'values')}"
    if rtype == "SRV":
        priority, weight, port, host = value.split()
        target = "." if host == "." else _hostname(host, "values")
        return f"{int(priority)} {int(weight)} {int(port)} {target}"
    if rtype == "CAA":
        flags, tag, rest = value.split(None, 2)
        rest = rest.strip()
        if not (rest.startswith('"') and rest.endswith('"') and len(rest) >= 2):
            rest = '"' + rest.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{int(flags)} {tag.lower()} {rest}"
    return value


def wire_values(rtype: str, values: list[str]) -> list[str]:
    return [wire_value(rtype, value) for value in values]


def compare_value(rtype: str, value: str) -> str:
    """A value read from Route 53 in the form `wire_value` produces, so the two compare equal
    when they mean the same: host names lower case without trailing dot, addresses canonical."""
    try:
        if rtype in ("A", "AAAA", "CNAME", "NS", "MX", "SRV"):
            return wire_value(rtype, value)
    except (ValueError, InvalidName):
        return value
    return value


def decode_route53_name(name: str) -> str:
    """Route 53 returns names with a trailing dot and some characters as `\\ddd` (`*` is
    `\\052`); ours have neither."""
    name = re.sub(r"\\(\d{3})", lambda m: chr(int(m.group(1), 8)), name)
    return name[:-1].lower() if name.endswith(".") else name.lower()

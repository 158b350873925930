"""Names and values: one stored form, every type's values checked where they enter."""

from __future__ import annotations

import pytest

from apps.dns.names import (
    InvalidName,
    decode_route53_name,
    normalize_domain_name,
    normalize_record_name,
    validate_ttl,
    validate_values,
    wire_value,
)


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("Example.COM.", "example.com"),
        ("bücher.de", "xn--bcher-kva.de"),
        (" sub.example.com ", "sub.example.com"),
    ],
)
def test_domain_names_are_stored_lower_case_without_dot_in_idna(given, stored):
    assert normalize_domain_name(given) == stored


@pytest.mark.parametrize("bad", ["", ".example.com", "a..b", "localhost", "exa mple.com", "-a.com"])
def test_malformed_domain_names_are_refused(bad):
    with pytest.raises(InvalidName) as caught:
        normalize_domain_name(bad)
    assert caught.value.field == "domain_name"


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("", "@"),
        ("@", "@"),
        ("example.com", "@"),
        ("example.com.", "@"),
        ("API", "api"),
        ("api.example.com", "api"),
        ("api.example.com.", "api"),
        ("a.b", "a.b"),
        ("*.apps", "*.apps"),
        ("_acme-challenge", "_acme-challenge"),
    ],
)
def test_record_names_relative_or_fqdn_are_stored_relative(given, stored):
    assert normalize_record_name(given, "example.com") == stored


@pytest.mark.parametrize(
    "bad", ["api.other.org.", "a.*.b", "_autoglue.api", "extdns-api", "a..b", "x" * 64]
)
def test_record_names_outside_the_domain_reserved_or_malformed_are_refused(bad):
    with pytest.raises(InvalidName):
        normalize_record_name(bad, "example.com")


@pytest.mark.parametrize(
    ("rtype", "values"),
    [
        ("A", ["203.0.113.1", "198.51.100.2"]),
        ("AAAA", ["2001:db8::1"]),
        ("CNAME", ["target.example.net."]),
        ("TXT", ["plain text", '"already" "quoted"']),
        ("MX", ["10 mail.example.com"]),
        ("NS", ["ns1.example.net"]),
        ("SRV", ["10 5 443 svc.example.com"]),
        ("CAA", ['0 issue "letsencrypt.org"']),
        (
            "CAA",
            [
                '0 issue "letsencrypt.org; validationmethods=dns-01"',
                "128 issuewild ;",
                '0 iodef "mailto:security@example.com"',
                '0 issue "say \\"hi\\""',
                "0 issue ca.example",
                '0 ISSUE "ca.example.net"',
                '0 issuemail "ca.example"',
            ],
        ),
    ],
)
def test_well_formed_values_of_every_type_are_accepted(rtype, values):
    assert validate_values(rtype, values) == values


@pytest.mark.parametrize(
    ("rtype", "values", "message"),
    [
        ("A", ["2001:db8::1"], "not an IPv4 address"),
        ("AAAA", ["203.0.113.1"], "not an IPv6 address"),
        ("CNAME", ["a.example.net", "b.example.net"], "exactly one value"),
        ("CNAME", ["not a host"], "not a host name"),
        ("MX", ["mail.example.com"], "MX value"),
        ("MX", ["70000 mail.example.com"], "MX priority"),
        ("SRV", ["10 5 svc.example.com"], "SRV value"),
        ("CAA", ["0 is$ue x"], "CAA tag"),
        # Route 53 refuses these, and with them every record set in the same change batch.
        ("CAA", ['0 iodef "x\\"'], "CAA value"),  # the closing quote is escaped: no end
        ("CAA", ['0 issue "a" junk "b"'], "CAA value"),
        ("CAA", ['0 issue "a" "b"'], "CAA value"),
        ("CAA", ['0 issue "a'], "CAA value"),
        ("CAA", ["0 issue a\\b"], "CAA value"),
        ("CAA", ['0 issue a"b'], "CAA value"),
        ("CAA", ["0 issue two words"], "CAA value"),
        ("CAA", ['0 tbs "x"'], "CAA tag"),  # not a tag RFC 8659 defines
        ("CAA", ['256 issue "x"'], "CAA flags"),
        # external-dns's registry records are not a tenant's to write through Autoglue.
        ("TXT", ["heritage=external-dns,external-dns/owner=orgb"], "external-dns"),
        ("TXT", ['"v=spf1" "HERITAGE=External-DNS,external-dns/owner=x"'], "external-dns"),
        ("TXT", ['"' + "x" * 256 + '"'], "longer than 255 bytes"),
        ("TXT", ['"open" text "x"'], "outside double quotes"),
        ("A", [], "at least one value"),
        ("A", ["203.0.113.1", " 203.0.113.1"], "duplicate values"),
    ],
)
def test_malformed_values_are_refused_with_the_reason(rtype, values, message):
    with pytest.raises(InvalidName) as caught:
        validate_values(rtype, values)
    assert message in caught.value.message


def test_long_txt_values_are_split_into_255_byte_strings_and_escaped():
    assert wire_value("TXT", 'say "hi"') == '"say \\"hi\\""'
    wire = wire_value("TXT", "é" * 200)  # 400 bytes
    strings = wire.split('" "')
    assert len(strings) == 2
    assert wire.startswith('"\\303\\251')  # octal, as Route 53 reads it


@pytest.mark.parametrize("ttl", [0, 86401, "300", True, 1.5])
def test_ttl_outside_bounds_is_refused(ttl):
    with pytest.raises(InvalidName):
        validate_ttl(ttl)


def test_route53_names_are_decoded():
    assert decode_route53_name("\\052.Apps.example.com.") == "*.apps.example.com"


@pytest.mark.parametrize(
    "value",
    [
        '0 issue "letsencrypt.org\nexample.net"',
        '0 issue "ca.example"\r\n0 issue "x"',
        "0\tissue\vx",
    ],
)
def test_a_caa_value_with_an_embedded_line_break_or_control_character_is_refused(value):
    with pytest.raises(InvalidName) as caught:
        validate_values("CAA", [value])
    assert "control characters" in caught.value.message


def test_an_mx_value_split_by_a_line_break_is_refused():
    with pytest.raises(InvalidName):
        validate_values("MX", ["10\nmail.example.com"])


@pytest.mark.parametrize("target", ["api.example.com", "API.example.com.", "api.example.com."])
def test_a_cname_pointing_at_its_own_name_is_refused(target):
    with pytest.raises(InvalidName) as caught:
        validate_values("CNAME", [target], owner_fqdn="api.example.com")
    assert "points at itself" in caught.value.message
    assert validate_values("CNAME", ["api.example.net"], owner_fqdn="api.example.com")


@pytest.mark.parametrize(
    "name",
    ["_autoglue.api", "api._autoglue", "extdns-a.api", "a.b.extdns-x", "x._AUTOGLUE.example.com."],
)
def test_a_reserved_label_anywhere_in_a_record_name_is_refused(name):
    with pytest.raises(InvalidName) as caught:
        normalize_record_name(name, "example.com")
    assert "reserved" in caught.value.message


@pytest.mark.parametrize(
    "name", ["_autoglue.www.example.com", "www._autoglue.example.com", "a.extdns-b.example.com"]
)
def test_a_reserved_label_anywhere_in_a_domain_name_is_refused(name):
    with pytest.raises(InvalidName) as caught:
        normalize_domain_name(name)
    assert "reserved" in caught.value.message

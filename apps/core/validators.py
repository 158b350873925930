"""Syntax of every value that reaches an SSH connection or a remote shell command.

Pure functions raising Django's `ValidationError`, so serializers (DRF converts them), model
`clean_fields()` (the admin console) and jobs share one rule each. Empty means "not set" for
the optional values (hostname, docker image and tag) and is accepted; the caller decides whether
it needs one. Messages never repeat the value: it may hold a newline or a terminal escape.

`check_server_for_ssh` and `check_cluster_for_run` take a stored row (duck-typed: this module
imports no app) and refuse it before a job uses it, because rows saved before these rules existed
were never checked.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ValidationError

HOSTNAME_MAX = 253
HOSTNAME_LABEL_MAX = 63
SSH_USER_MAX = 32
DOCKER_IMAGE_MAX = 255
MAKE_TARGET_MAX = 255
PORT_MIN, PORT_MAX = 1, 65535

# fullmatch everywhere: `$` alone would accept a trailing newline.
_HOSTNAME_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?")
_SSH_USER = re.compile(r"[a-z_][a-z0-9_-]*\$?")
# The OCI/Docker reference grammar (distribution/reference), without tag or digest:
# [registry-host[:port]/]path-component(/path-component)*
_DOMAIN_COMPONENT = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOCKER_IMAGE = re.compile(rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DOCKER_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_MAKE_TARGET = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*")
# Characters that end a line or steer a terminal: C0/C1 controls (newline, ESC), DEL, the Unicode
# line and paragraph separators, and the bidirectional overrides that reorder what is displayed.
UNSAFE_TEXT = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# "This network": Linux connects 0.x.x.x to the local host, like 0.0.0.0.
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
# Cloud metadata and instance services outside the link-local ranges (169.254.0.0/16 and
# fe80::/10 are refused as link-local already): AWS's IPv6 metadata, DNS and time endpoints,
# Alibaba Cloud's metadata service and Azure's WireServer (168.63.129.16, which hands out VM
# configuration). An SSH attempt there is a probe, never a server.
METADATA_NETWORKS = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "fd00:ec2::254/128",
        "fd00:ec2::253/128",
        "fd00:ec2::123/128",
        "100.100.100.200/32",
        "168.63.129.16/32",
        "fd20:ce::254/128",  # GCP's metadata server over IPv6
    )
)

_Validator = TypeVar("_Validator", bound=Callable[..., None])
# Validators a regular expression describes, with it as the OpenAPI `pattern` of the fields they
# check (apps.core.api.schema), so generated clients refuse a bad value before sending it. The
# expressions are ECMA-262 compatible (what JSON Schema specifies) and anchored; lengths stay in
# the validators (and `maxLength`), which remain the rule.
OPENAPI_PATTERNS: dict[Callable[..., None], str] = {}


def openapi_pattern(pattern: str) -> Callable[[_Validator], _Validator]:
    """Declare the `pattern` that documents a validator (see OPENAPI_PATTERNS)."""

    def register(validator: _Validator) -> _Validator:
        OPENAPI_PATTERNS[validator] = pattern
        return validator

    return register


def _require_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValidationError("must be a string", code="invalid")
    return value


def validate_name(value: str) -> None:
    """A display name (cluster, node pool, key, credential, load balancer): free text, but one
    line of it. Names are printed in job logs and written into files a job's tooling reads, so a
    line break, a terminal escape or a bidirectional override would forge or disguise a line."""
    value = _require_str(value)
    if UNSAFE_TEXT.search(value):
        raise ValidationError(
            "must not contain control characters, line breaks or bidirectional overrides",
            code="invalid",
        )


def validate_hostname(value: str) -> None:
    """An RFC 1123 host name (`node-1`, `db.example.com`), or empty for none."""
    value = _require_str(value)
    if value == "":
        return
    if len(value) > HOSTNAME_MAX:
        raise ValidationError(f"must be at most {HOSTNAME_MAX} characters", code="invalid")
    for label in value.split("."):
        if len(label) > HOSTNAME_LABEL_MAX:
            raise ValidationError(
                f"each dot-separated label must be at most {HOSTNAME_LABEL_MAX} characters",
                code="invalid",
            )
        if not _HOSTNAME_LABEL.fullmatch(label):
            raise ValidationError(
                "must be a host name: dot-separated labels of letters, digits and '-', "
                "not starting or ending with '-'",
                code="invalid",
            )


def validate_ssh_user(value: str) -> None:
    """A POSIX user name (`ubuntu`, `deploy_1`); never starts with '-', so it cannot be read as
    an ssh option such as `-oProxyCommand=...`."""
    value = _require_str(value)
    if value == "":
        raise ValidationError("must not be empty", code="invalid")
    if len(value) > SSH_USER_MAX:
        raise ValidationError(f"must be at most {SSH_USER_MAX} characters", code="invalid")
    if not _SSH_USER.fullmatch(value):
        raise ValidationError(
            "must be a POSIX user name: lowercase letters, digits, '_' and '-', starting with "
            "a letter or '_'",
            code="invalid",
        )


def unmapped_ip(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The address `value` names, an IPv4-mapped IPv6 one (`::ffff:127.0.0.1`) as the IPv4
    address it is, so every check (loopback, metadata, deny-list) sees the machine reached.
    Raises ValueError for what is not an address."""
    address = ipaddress.ip_address(value)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def validate_target_ip(value: str, *, allow_private_test_targets: bool | None = None) -> None:
    """An address Autoglue may open an SSH connection to.

    Refused: loopback, link-local (169.254.169.254, the cloud metadata service, among them),
    the other cloud metadata addresses (`METADATA_NETWORKS`: fd00:ec2::254, 100.100.100.200...),
    multicast, unspecified, "this network" (0/8) and reserved addresses (255.255.255.255 too),
    and whatever the operator lists in `SSH_TARGET_DENY_CIDRS` (their own internal ranges).
    Private (RFC 1918, ULA) addresses are allowed otherwise: servers have them. Loopback is
    allowed only when `allow_private_test_targets` is true; left None, it is the
    `AUTOGLUE_ALLOW_LOOPBACK_TARGETS` setting (tests SSH into a local sshd). The metadata and
    deny-list rules hold even then.
    """
    value = _require_str(value)
    try:
        address = unmapped_ip(value)
    except ValueError:
        raise ValidationError("must be a valid IPv4 or IPv6 address", code="invalid") from None
    if allow_private_test_targets is None:
        allow_private_test_targets = getattr(settings, "AUTOGLUE_ALLOW_LOOPBACK_TARGETS", False)
    for inner in _embedded_ipv4(address):
        validate_target_ip(str(inner), allow_private_test_targets=allow_private_test_targets)
    _refuse_listed(address)
    if address.is_loopback:
        if allow_private_test_targets:
            return
        raise ValidationError("must not be a loopback address", code="invalid")
    if address.is_unspecified or (
        isinstance(address, ipaddress.IPv4Address) and address in _THIS_NETWORK
    ):
        raise ValidationError("must not be an unspecified address", code="invalid")
    if address.is_link_local:
        raise ValidationError("must not be a link-local address", code="invalid")
    if address.is_multicast:
        raise ValidationError("must not be a multicast address", code="invalid")
    if address.is_reserved:
        raise ValidationError("must not be a reserved or broadcast address", code="invalid")


def _embedded_ipv4(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses a 6to4 (2002::/16) or Teredo (2001::/32) address carries, which a
    relay reaches (2002:a9fe:a9fe::1 is the metadata service): each meets the same rules."""
    if not isinstance(address, ipaddress.IPv6Address):
        return []
    found = [address.sixtofour, *(address.teredo or ())]
    return [inner for inner in found if inner is not None]


def _refuse_listed(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    """Metadata services and the operator's deny-list: refused whatever else is allowed."""
    if any(address in network for network in METADATA_NETWORKS):
        raise ValidationError("must not be a cloud metadata address", code="invalid")
    denied = getattr(settings, "SSH_TARGET_DENY_CIDRS", ())
    if any(address in ipaddress.ip_network(cidr) for cidr in denied):
        raise ValidationError(
            "is in an address range this installation does not connect to", code="invalid"
        )


def validate_ssh_port(value: int) -> None:
    """A TCP port, 1..65535."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("must be an integer", code="invalid")
    if not PORT_MIN <= value <= PORT_MAX:
        raise ValidationError(f"must be between {PORT_MIN} and {PORT_MAX}", code="invalid")


@openapi_pattern(rf"^(?:{_DOCKER_IMAGE.pattern})?$")
def validate_docker_image(value: str) -> None:
    """An image name in the OCI reference grammar, without tag or digest
    (`ghcr.io/glueops/tools`, `localhost:5000/team/app`, `ubuntu`), or empty for none."""
    value = _require_str(value)
    if value == "":
        return
    if len(value) > DOCKER_IMAGE_MAX:
        raise ValidationError(f"must be at most {DOCKER_IMAGE_MAX} characters", code="invalid")
    if "@" in value:
        raise ValidationError("must not include a digest", code="invalid")
    if ":" in value.rsplit("/", 1)[-1]:
        raise ValidationError("must not include a tag; set docker_tag instead", code="invalid")
    if not _DOCKER_IMAGE.fullmatch(value):
        raise ValidationError(
            "must be an image name: an optional registry host[:port]/ and '/'-separated "
            "lowercase components of letters and digits joined by '.', '_', '__' or '-'",
            code="invalid",
        )


@openapi_pattern(rf"^(?:{_DOCKER_TAG.pattern})?$")
def validate_docker_tag(value: str) -> None:
    """An image tag (`v1.2.3`, `latest`): up to 128 of [A-Za-z0-9_.-], not starting with '.'
    or '-'; or empty for none."""
    value = _require_str(value)
    if value == "":
        return
    if not _DOCKER_TAG.fullmatch(value):
        raise ValidationError(
            "must be an image tag: up to 128 letters, digits, '_', '.' or '-', not starting "
            "with '.' or '-'",
            code="invalid",
        )


def validate_make_target(value: str) -> None:
    """A plain make target name (`setup`, `k3s.install`): it is put on a `make` command line."""
    value = _require_str(value)
    if value == "":
        raise ValidationError("must not be empty", code="invalid")
    if len(value) > MAKE_TARGET_MAX:
        raise ValidationError(f"must be at most {MAKE_TARGET_MAX} characters", code="invalid")
    if not _MAKE_TARGET.fullmatch(value):
        raise ValidationError(
            "must be a make target name: letters, digits, '_', '.' and '-', not starting with '-'",
            code="invalid",
        )


def _check_row(kind: str, row: Any, checks: list[tuple[str, Any, Any]]) -> None:
    """Run each (field, value, validator); raise one ValidationError whose messages read
    `<kind> <pk>: <field>: <reason>`, one per bad field (`"; ".join(exc.messages)`)."""
    problems = []
    for field, value, validator in checks:
        try:
            validator(value)
        except ValidationError as exc:
            for reason in exc.messages:
                problems.append(
                    ValidationError(f"{kind} {row.pk}: {field}: {reason}", code="invalid")
                )
    if problems:
        raise ValidationError(problems)


def check_server_for_ssh(server: Any) -> None:
    """Refuse a stored server whose hostname, ssh_user, IPs or ssh_port an SSH job must not use
    (rows saved before these rules existed, or written around the API)."""
    checks: list[tuple[str, Any, Any]] = [
        ("hostname", server.hostname, validate_hostname),
        ("ssh_user", server.ssh_user, validate_ssh_user),
        ("private_ip_address", server.private_ip_address, validate_target_ip),
        ("ssh_port", getattr(server, "ssh_port", 22), validate_ssh_port),
    ]
    if server.public_ip_address:
        checks.insert(2, ("public_ip_address", server.public_ip_address, validate_target_ip))
    _check_row("server", server, checks)


def check_cluster_for_run(cluster: Any) -> None:
    """Refuse a stored cluster whose docker_image or docker_tag a run must not use."""
    _check_row(
        "cluster",
        cluster,
        [
            ("docker_image", cluster.docker_image, validate_docker_image),
            ("docker_tag", cluster.docker_tag, validate_docker_tag),
        ],
    )

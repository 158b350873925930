"""Kubernetes syntax for labels, annotations and taints, checked at the API so a bad key fails
here and not later on a node (`kubectl label` would reject it mid-bootstrap).

The rules are Kubernetes' own (k8s.io/apimachinery/pkg/util/validation):
- a qualified name (label, annotation and taint keys) is an optional DNS-1123 subdomain prefix
  of at most 253 characters, a "/", and a name of at most 63 characters of [A-Za-z0-9._-]
  that starts and ends with an alphanumeric character;
- a label value (also a taint value) is empty or such a name;
- annotation values are free text, but all of an object's annotations together stay under
  256 KiB, so one value may not exceed that either.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

from apps.core.validators import openapi_pattern

NAME_MAX = 63
PREFIX_MAX = 253
ANNOTATION_VALUE_MAX_BYTES = 256 * 1024

# Matched with fullmatch: `$` alone would accept a trailing newline (a broken `kubectl label`).
_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")


def _check_name(name: str, what: str = "") -> None:
    # `what` names a part of the value; the whole value is named by the field the error is on
    # (a label's `key`), so the message then starts with "must".
    lead = f"{what} must" if what else "must"
    if not name:
        raise ValidationError(f"{lead} not be empty")
    if len(name) > NAME_MAX:
        raise ValidationError(f"{lead} be at most {NAME_MAX} characters")
    if not _NAME.fullmatch(name):
        raise ValidationError(
            f"{lead} consist of alphanumeric characters, '-', '_' or '.', and must start "
            "and end with an alphanumeric character"
        )


@openapi_pattern(rf"^(?:{_DNS_SUBDOMAIN.pattern[1:-1]}/)?{_NAME.pattern[1:-1]}$")
def validate_qualified_name(value: str) -> None:
    """A Kubernetes qualified name: `[prefix/]name`, e.g. `node-role.kubernetes.io/worker`."""
    if value.count("/") > 1:
        raise ValidationError("must be a name with an optional DNS subdomain prefix and '/'")
    prefix, _, name = value.rpartition("/")
    if "/" in value:
        if not prefix:
            raise ValidationError("prefix before '/' must not be empty")
        if len(prefix) > PREFIX_MAX:
            raise ValidationError(f"prefix must be at most {PREFIX_MAX} characters")
        if not _DNS_SUBDOMAIN.fullmatch(prefix):
            raise ValidationError("prefix must be a lowercase DNS subdomain (e.g. example.com)")
    _check_name(name, "the part after '/'" if prefix else "")


@openapi_pattern(rf"^(?:{_NAME.pattern[1:-1]})?$")
def validate_label_value(value: str) -> None:
    """A Kubernetes label value: empty, or a name of at most 63 characters."""
    if value == "":
        return
    _check_name(value)


def validate_annotation_value(value: str) -> None:
    """Annotation values are free text; Kubernetes caps an object's annotations at 256 KiB."""
    if len(value.encode("utf-8")) > ANNOTATION_VALUE_MAX_BYTES:
        raise ValidationError(f"must be at most {ANNOTATION_VALUE_MAX_BYTES} bytes")

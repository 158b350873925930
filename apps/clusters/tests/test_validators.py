"""Kubernetes syntax for label/annotation/taint keys and values."""

import pytest
from django.core.exceptions import ValidationError

from apps.clusters.validators import (
    validate_annotation_value,
    validate_label_value,
    validate_qualified_name,
)


@pytest.mark.parametrize(
    "key",
    [
        "app",
        "node-role.kubernetes.io/worker",
        "example.com/tier",
        "a",
        "A_b.c-D",
        "x" * 63,
        ("a" * 63 + ".") * 3 + "b" * 61 + "/name",
    ],
)
def test_valid_qualified_names_are_accepted(key):
    validate_qualified_name(key)


@pytest.mark.parametrize(
    "key",
    [
        "",
        "-app",
        "app-",
        "has space",
        "x" * 64,
        "/name",
        "Example.com/name",
        "example.com/",
        "a/b/c",
        "exa_mple.com/name",
        "a" * 254 + "/name",
        "emoji-✓",
    ],
)
def test_invalid_qualified_names_are_rejected(key):
    with pytest.raises(ValidationError):
        validate_qualified_name(key)


@pytest.mark.parametrize("value", ["", "v1", "a.b_c-d", "x" * 63])
def test_valid_label_values_are_accepted(value):
    validate_label_value(value)


@pytest.mark.parametrize("value", ["x" * 64, "-v", "v-", "with space", "a/b"])
def test_invalid_label_values_are_rejected(value):
    with pytest.raises(ValidationError):
        validate_label_value(value)


def test_annotation_values_are_free_text_up_to_256_kib():
    validate_annotation_value('any text: {"json": true} with spaces / slashes')
    validate_annotation_value("x" * 256 * 1024)
    with pytest.raises(ValidationError):
        validate_annotation_value("x" * (256 * 1024 + 1))

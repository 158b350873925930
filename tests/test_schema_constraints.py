"""Our OpenAPI document says what the server accepts, so a generated client can refuse a bad
value before sending it: path ids are UUIDs, `limit` has its bounds, and the Kubernetes and OCI
syntaxes the validators check are `pattern`s, in the ECMA-262 dialect JSON Schema specifies."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from drf_spectacular.generators import SchemaGenerator

from apps.clusters.validators import validate_label_value, validate_qualified_name
from apps.core.api.pagination import MAX_LIMIT
from apps.core.validators import OPENAPI_PATTERNS, validate_docker_image, validate_docker_tag

# Values each validator accepts or refuses, to hold its pattern to the same answer.
SAMPLES: dict[Any, list[str]] = {
    validate_qualified_name: [
        "app",
        "node-role.kubernetes.io/worker",
        "example.com/a_b.c",
        "",
        "-app",
        "app-",
        "Example.com/app",
        "a/b/c",
        "/app",
        "app\n",
        "ünïcode",
    ],
    validate_label_value: ["", "v1", "a.b_c-d", "-v", "v-", "a b", "v\n"],
    validate_docker_image: [
        "",
        "ubuntu",
        "ghcr.io/glueops/tools",
        "localhost:5000/team/app",
        "Ubuntu",
        "ghcr.io/glueops/tools:v1",
        "ghcr.io//tools",
        "tools\n",
    ],
    validate_docker_tag: ["", "v1.2.3", "latest", "_x", ".v1", "-v1", "v 1", "x" * 129],
}


def _accepts(validator: Any, value: str) -> bool:
    try:
        validator(value)
    except ValidationError:
        return False
    return True


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def _parameters(schema: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", parameter)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if isinstance(operation, dict)
        for parameter in operation.get("parameters", [])
    ]


def test_every_object_id_in_a_path_is_declared_a_uuid(schema):
    ids = [
        (operation, parameter)
        for operation, parameter in _parameters(schema)
        if parameter["in"] == "path" and parameter["name"] != "provider"
    ]
    assert len(ids) > 100
    assert [
        f"{operation} {parameter['name']}"
        for operation, parameter in ids
        if parameter["schema"] != {"type": "string", "format": "uuid"}
    ] == []


def test_limit_is_declared_with_the_bounds_the_server_checks(schema):
    limits = [p for _, p in _parameters(schema) if p["in"] == "query" and p["name"] == "limit"]
    assert len(limits) > 10
    for parameter in limits:
        assert parameter["schema"] == {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}


@pytest.mark.parametrize(
    ("component", "field", "validator"),
    [
        ("LabelRequest", "key", validate_qualified_name),
        ("LabelRequest", "value", validate_label_value),
        ("PatchedTaintRequest", "key", validate_qualified_name),
        ("TaintRequest", "value", validate_label_value),
        ("AnnotationRequest", "key", validate_qualified_name),
        ("ClusterCreateRequest", "docker_image", validate_docker_image),
        ("PatchedClusterUpdateRequest", "docker_tag", validate_docker_tag),
    ],
)
def test_syntax_checked_by_a_validator_is_the_fields_pattern(schema, component, field, validator):
    properties = schema["components"]["schemas"][component]["properties"]
    assert properties[field]["pattern"] == OPENAPI_PATTERNS[validator]


def test_the_taint_effect_is_an_enum(schema):
    effects = schema["components"]["schemas"]["EffectEnum"]["enum"]
    assert set(effects) == {"NoSchedule", "PreferNoSchedule", "NoExecute"}


@pytest.mark.parametrize("validator", list(SAMPLES), ids=lambda v: v.__name__)
def test_a_pattern_accepts_exactly_what_its_validator_accepts(validator):
    pattern = OPENAPI_PATTERNS[validator]
    for value in SAMPLES[validator]:
        # A JSON Schema pattern is searched for, unanchored; ours anchor themselves.
        matches = re.search(pattern, value) is not None and not value.endswith("\n")
        assert matches == _accepts(validator, value), value


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node for an ECMA-262 engine")
@pytest.mark.parametrize("validator", list(SAMPLES), ids=lambda v: v.__name__)
def test_a_pattern_means_the_same_to_an_ecma_262_engine(validator):
    """What generated TypeScript clients and JSON Schema validators run: JavaScript's RegExp."""
    pattern = OPENAPI_PATTERNS[validator]
    script = (
        "const [p, values] = JSON.parse(process.argv[1]);"
        "const r = new RegExp(p, 'u');"
        "console.log(JSON.stringify(values.map((v) => r.test(v))));"
    )
    values = SAMPLES[validator]
    out = subprocess.run(  # noqa: S603 - a fixed script and our own patterns
        ["node", "-e", script, json.dumps([pattern, values])],  # noqa: S607
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert json.loads(out.stdout) == [_accepts(validator, value) for value in values]

"""The original's OpenAPI document (the wire contract its TypeScript SDK and Terraform provider
were generated from), run against our live server with valid credentials.

The document has faults of its own, corrected before the run and listed in docs/conformance.md
("Faults of the original document"); what our server does differently on purpose is listed
there too ("Deliberate differences") and in `DELIBERATE_DIFFERENCES` below, which the test
allows and nothing else.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from apps.jobs.models import JobRun
from tests.conformance.support import (
    Finding,
    RunReport,
    format_findings,
    route_answers,
    run_operations,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ORIGINAL = Path(__file__).with_name("original-openapi.json")
ERROR_SCHEMA = {"$ref": "#/components/schemas/utils.ErrorResponse"}

# (operation, check, status) -> why. Keep docs/conformance.md in step.
DELIBERATE_DIFFERENCES: dict[tuple[str, str, int | None], str] = {}


def original_document() -> dict:
    return json.loads(ORIGINAL.read_text())


def corrected(document: dict) -> dict:
    """The original document with its own faults corrected (docs/conformance.md, "Faults of the
    original document", lists each with the evidence): what the original's server sent, which
    its generated clients already cope with."""
    document = copy.deepcopy(document)
    schemas = document["components"]["schemas"]
    # A nullable text column, typed as a plain string.
    schemas["models.Organization"]["properties"]["domain"] = {"type": ["string", "null"]}
    # A JSON array of strings (jsonb), typed as an object.
    schemas["dto.RecordSetResponse"]["properties"]["values"] = {
        "type": "array",
        "items": {"type": "string"},
    }
    # Seven statuses written as one enum value, "queued|running|...|scheduled" (a swag `enums`
    # annotation with `|` where it takes commas): no status the server sends is that string.
    job_status = schemas["dto.JobStatus"]
    job_status["enum"] = [value for joined in job_status["enum"] for value in joined.split("|")]
    paths = document["paths"]
    # One load balancer, typed as a list of them.
    paths["/load-balancers/{id}"]["get"]["responses"]["200"]["content"]["application/json"] = {
        "schema": {"$ref": "#/components/schemas/dto.LoadBalancerResponse"}
    }
    # A file (or, with mode=json, a JSON object), typed as a JSON string.
    paths["/ssh/{id}/download"]["get"]["responses"]["200"]["content"] = {
        "text/plain": {"schema": {"type": "string"}},
        "application/x-pem-file": {"schema": {"type": "string"}},
        "application/zip": {"schema": {"type": "string", "format": "binary"}},
        "application/json": {"schema": {"type": "object"}},
    }
    for item in paths.values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            # "Version                 // operationId": a Go comment inside the annotation.
            operation_id = operation.get("operationId", "")
            operation["operationId"] = operation_id.split("//")[0].strip() or operation_id
            for status, response in operation["responses"].items():
                content = response.get("content", {})
                if status == "204":
                    # A 204 has no body by definition.
                    response.pop("content", None)
                    continue
                if status >= "400" and "application/json" in content:
                    # Every error body is {code, message}; most are typed as a bare string.
                    content["application/json"]["schema"] = ERROR_SCHEMA
                for media in content.values():
                    # Overlapping alternatives (a key with or without its private half) under
                    # oneOf, which no instance of the wider one can satisfy.
                    schema = media.get("schema", {})
                    if "oneOf" in schema:
                        schema["anyOf"] = schema.pop("oneOf")
    return document


def operations_of(document: dict) -> list[tuple[str, str]]:
    return [
        (method.upper(), "/api/v1" + path)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def test_every_job_status_we_send_is_one_of_the_corrected_documents():
    enum = corrected(original_document())["components"]["schemas"]["dto.JobStatus"]["enum"]
    assert {status.value for status in JobRun.Status} | {"scheduled"} <= set(enum)


def test_the_original_document_has_119_operations_and_every_one_has_a_route_of_ours():
    operations = operations_of(original_document())
    missing = [f"{method} {path}" for method, path in operations if not route_answers(method, path)]
    assert len(operations) == 119
    assert missing == []


def test_every_operation_of_the_original_contract_answers_within_its_document(
    live_server_url, world, seeded
):
    schema = schemathesis.openapi.from_dict(corrected(original_document()))
    operations = [result.ok() for result in schema.get_all_operations()]
    report = RunReport()
    run_operations(
        operations,
        base_url=live_server_url + "/api/v1",
        headers=world.headers,
        checks=[not_a_server_error, content_type_conformance, response_schema_conformance],
        fresh_objects=seeded,
        report=report,
    )

    def allowed(finding: Finding) -> bool:
        return finding.key() in DELIBERATE_DIFFERENCES

    unexpected = report.unexpected(allowed)
    assert not unexpected, format_findings(unexpected)
    refused = {op: status for op, status in report.valid.items() if not 200 <= (status or 0) < 300}
    assert refused == {}, "a valid body was refused"

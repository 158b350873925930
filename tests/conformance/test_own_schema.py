"""Our own OpenAPI document, as served at /api/v1/openapi.json, run against the live server:
every operation (stateless, valid and invalid inputs) and then sequences of them (stateful:
create, then use what was created), with valid credentials. No 5xx, no response outside the
document, no status code the document does not list.

The document itself is checked first (without a server): the contract's operationIds, its path
parameters, `X-Org-ID` and the `{code, message}` error body on every error response."""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, reject, settings
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conformance.support import (
    Finding,
    RunReport,
    format_findings,
    run_operations,
    scrub_credentials,
)

ORIGINAL = Path(__file__).with_name("original-openapi.json")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Live log streams (Server-Sent Events) stay open until their run ends: a request to one is
# not a request/response exchange schemathesis can check; tests/test_jobs_live.py covers them.
STREAMS = re.compile(r"/logs/stream$")
_METHODS = {"get", "post", "put", "patch", "delete"}


def own_document() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(document: dict) -> list[tuple[str, str, dict]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in _METHODS
    ]


def test_every_operation_of_the_contract_keeps_its_operation_id_and_path(db):
    ours = {(m, p): op["operationId"] for m, p, op in operations(own_document())}
    original = json.loads(ORIGINAL.read_text())
    expected = {
        (method, "/api/v1" + path): op["operationId"].split("//")[0].strip()
        for method, path, op in operations(original)
    }
    assert {key: ours.get(key) for key in expected} == expected
    assert len(set(ours.values())) == len(ours)


def test_no_operation_declares_a_path_parameter_its_path_lacks(db):
    wrong = []
    for method, path, operation in operations(own_document()):
        declared = sorted(p["name"] for p in operation.get("parameters", []) if p["in"] == "path")
        if declared != sorted(re.findall(r"\{([^}]+)\}", path)):
            wrong.append(f"{method} {path}: {declared}")
    assert wrong == []


def test_every_error_response_is_the_code_and_message_body(db):
    document = own_document()
    assert document["components"]["schemas"]["Error"]["required"] == ["code", "message"]
    wrong = [
        f"{method} {path} {status}"
        for method, path, operation in operations(document)
        for status, response in operation["responses"].items()
        # The readiness probe's 503 is its report (which check failed), not an error.
        if status >= "400"
        and (path, status) != ("/api/v1/readyz", "503")
        and response.get("content", {}).get("application/json", {}).get("schema")
        != {"$ref": "#/components/schemas/Error"}
    ]
    assert wrong == []
    servers = document["paths"]["/api/v1/servers/{id}"]["get"]["responses"]
    assert {"400", "401", "403", "404", "429"} <= set(servers)


def test_tenant_operations_declare_x_org_id_and_the_credentials_they_accept(db):
    document = own_document()
    operation = document["paths"]["/api/v1/servers"]["get"]
    assert "X-Org-ID" in [p["name"] for p in operation["parameters"] if p["in"] == "header"]
    assert {"BearerAuth": []} in operation["security"]
    assert {"OrgKeyAuth": [], "OrgSecretAuth": []} in operation["security"]
    schemes = document["components"]["securitySchemes"]
    assert {"BearerAuth", "ApiKeyAuth", "OrgKeyAuth", "OrgSecretAuth"} <= set(schemes)
    me = document["paths"]["/api/v1/me"]["get"]
    assert "X-Org-ID" not in [p["name"] for p in me.get("parameters", [])]


def test_downloads_are_files_and_detaching_answers_the_cluster(db):
    document = own_document()
    download = document["paths"]["/api/v1/ssh/{id}/download"]["get"]["responses"]["200"]
    assert {"text/plain", "application/x-pem-file", "application/zip", "application/json"} == set(
        download["content"]
    )
    detach = document["paths"]["/api/v1/clusters/{clusterID}/bastion"]["delete"]["responses"]
    assert "200" in detach and "204" not in detach


@pytest.fixture
def served_schema(live_server_url):
    response = requests.get(f"{live_server_url}/api/v1/openapi.json", timeout=30)
    assert response.status_code == 200
    return schemathesis.openapi.from_dict(response.json()).exclude(path_regex=STREAMS.pattern)


def _selected(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_every_operation_answers_only_what_our_document_says(
    served_schema, live_server_url, world, seeded
):
    report = RunReport()
    run_operations(
        _selected(served_schema),
        base_url=live_server_url,
        headers=world.headers,
        checks=CHECKS,
        fresh_objects=seeded,
        report=report,
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    )
    unexpected = report.findings
    assert not unexpected, format_findings(unexpected)
    refused = {op: status for op, status in report.valid.items() if not 200 <= (status or 0) < 300}
    assert refused == {}, "a valid body was refused"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sequences_of_operations_answer_only_what_our_document_says(
    served_schema, live_server_url, world
):
    report = RunReport()
    base = served_schema.as_state_machine()

    class Workflow(base):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            scrub_credentials(case)
            return {"base_url": live_server_url, "headers": world.headers, "timeout": 30}

        def step(self, input: Any) -> Any:  # noqa: A002 - schemathesis's parameter name
            # Anything a step raises is a finding too; raised, Hypothesis would replay the
            # sequence, and a replay against a server that has moved on draws differently.
            try:
                return super().step(input)
            except Exception as exc:  # noqa: BLE001 - reported below with the operation
                label = f"{input.case.method.upper()} {input.case.operation.path}"
                report.add(Finding(label, "exception", None, repr(exc)[:600]))
                reject()  # this sequence ends here; the finding fails the test below

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            label = f"{case.method.upper()} {case.operation.path}"
            report.record(label, response.status_code)
            try:
                case.validate_response(response, checks=CHECKS, headers=world.headers)
            except FailureGroup as group:
                for failure in group.exceptions:
                    report.add(
                        Finding(
                            label,
                            str(getattr(failure, "title", type(failure).__name__)),
                            response.status_code,
                            str(failure)[:600],
                        )
                    )

    # Hypothesis also replays the start of earlier sequences to vary them; against a server
    # whose state has moved on, a replay can find another set of transitions open, and
    # Hypothesis stops there (FlakyStrategyDefinition). Every step sent until then was checked.
    with contextlib.suppress(FlakyStrategyDefinition):
        Workflow.run(
            settings=settings(
                max_examples=30,
                # Generation only: a sequence depends on what the server holds, so replaying
                # one (to shrink it) draws differently; a failure is reported as found.
                phases=[Phase.generate],
                stateful_step_count=6,
                derandomize=True,
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            )
        )
    assert report.calls > 50  # sequences ran, not only their first steps
    assert not report.findings, format_findings(report.findings)

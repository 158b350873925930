"""Shared pieces of the conformance runs: the world the server is tested in, the generated cases'
anchoring on real objects, and the bounded, seeded loop that sends every operation's examples.

Each run sends, per operation, a few generated cases twice: once as generated (random ids, so
the error paths answer) and once "anchored", with every id in the path replaced by a real object
of the organization the credentials act in (so the success paths answer). Failures are collected
over the whole run and compared with the documented differences (docs/conformance.md), so one
report lists every operation that misbehaves instead of stopping at the first.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import requests
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

from apps.accounts import services as account_services
from apps.accounts.tests.factories import UserFactory
from apps.clusters.tests.factories import (
    ActionFactory,
    AnnotationFactory,
    ClusterFactory,
    ClusterMetadataFactory,
    ClusterRunFactory,
    LabelFactory,
    NodePoolFactory,
    TaintFactory,
)
from apps.dns.tests.factories import DomainFactory, RecordSetFactory
from apps.groupsync.tests.factories import GroupRoleMappingFactory
from apps.infrastructure import registry
from apps.infrastructure.tests.factories import (
    CredentialFactory,
    LoadBalancerFactory,
    ServerFactory,
    SSHKeyFactory,
)
from apps.orgs.tests.factories import MembershipFactory, OrganizationFactory

# Examples per operation and generation mode. Small on purpose: the runs must stay a few
# minutes in CI; `derandomize` makes them the same examples on every run (a fixed seed).
MAX_EXAMPLES = {"positive": 3, "negative": 2}
HYPOTHESIS = settings(
    max_examples=3,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@dataclass
class World:
    """The principal the runs act as: Olivia, owner of Acme and a platform admin, signed in
    with a JWT and sending `X-Org-ID: <Acme>`."""

    org_id: uuid.UUID
    user_id: uuid.UUID
    access_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}", "X-Org-ID": str(self.org_id)}


def make_world() -> World:
    from apps.accounts import jwt
    from apps.core.crypto.keys import clear_key_cache

    # This process may remember a signing key and data keys from before the last flush (an
    # earlier transactional test); the server knows only the keys in the database.
    jwt.reset_keyring()
    clear_key_cache()
    org = OrganizationFactory(name="Acme")
    user = UserFactory(primary_email="olivia@acme.example", is_admin=True)
    MembershipFactory(user=user, organization=org, role="owner")
    pair = account_services.token_pair_issue(user=user)
    return World(org_id=org.pk, user_id=user.pk, access_token=pair.access_token)


def seed_objects(world: World, method: str, path: str) -> dict[str, str]:
    """One of every resource in the world's organization, fresh for each operation with ids in
    its path or a valid body (a DELETE in one operation must not take the anchor of the next).
    Keyed by the path segment that names the resource's collection; a separate organization
    stands in for `/orgs/{id}` so deleting it never deletes the world's."""
    from apps.accounts.models import User
    from apps.infrastructure.models import Credential
    from apps.orgs.models import Organization

    key = f"{method.upper()} {path.removeprefix('/api/v1')}"
    if "{" not in path and key not in VALID_BODIES:
        return {}
    org = Organization.objects.get(pk=world.org_id)
    user = User.objects.get(pk=world.user_id)
    cluster = ClusterFactory(organization=org)
    pool = NodePoolFactory(organization=org)
    label = LabelFactory(organization=org)
    annotation = AnnotationFactory(organization=org)
    taint = TaintFactory(organization=org)
    server = ServerFactory(organization=org)
    through = {"organization": org}
    pool.servers.add(server, through_defaults=through)
    pool.labels.add(label, through_defaults=through)
    pool.annotations.add(annotation, through_defaults=through)
    pool.taints.add(taint, through_defaults=through)
    cluster.node_pools.add(pool, through_defaults=through)
    action = ActionFactory()
    run = ClusterRunFactory(cluster=cluster, action_ref=action)
    spare_org = OrganizationFactory(name="Spare")
    MembershipFactory(user=user, organization=spare_org, role="owner")
    teammate = UserFactory()
    MembershipFactory(user=teammate, organization=spare_org, role="member")
    metadata = ClusterMetadataFactory(cluster=cluster)
    ids = {
        "actions": action.pk,
        "annotations": annotation.pk,
        "clusters": cluster.pk,
        "credentials": CredentialFactory(organization=org).pk,
        "labels": label.pk,
        "load-balancers": LoadBalancerFactory(organization=org).pk,
        "node-pools": pool.pk,
        "runs": run.pk,
        "servers": server.pk,
        "bastions": ServerFactory(organization=org, role="bastion").pk,
        "ssh": SSHKeyFactory(organization=org).pk,
        "taints": taint.pk,
        "orgs": spare_org.pk,
        "members": teammate.pk,
        "auth": "google",
        "metadata": metadata.pk,
        "group-mappings": GroupRoleMappingFactory(organization=org).pk,
    }
    if "api-keys" in path:  # an argon2 hash each: only where a path names a key
        ids["me/api-keys"] = account_services.api_key_create_for_user(user=user, name="k").key.pk
        ids["orgs/api-keys"] = account_services.api_key_create_for_org(
            organization=spare_org, name="k"
        ).key.pk
    # The DNS routes landed after this harness; seed their objects once they answer.
    if route_answers("GET", "/api/v1/dns/domains"):
        domain = DomainFactory(organization=org)
        ids["domains"] = domain.pk
        ids["records"] = RecordSetFactory(domain=domain).pk
        # One credential per organization and scope: made once, kept for every operation.
        route53 = {"service": "route53"}
        fingerprint = registry.scope_fingerprint(route53)
        credential = Credential.objects.filter(
            organization=org, scope_fingerprint=fingerprint
        ).first() or CredentialFactory(
            organization=org, scope_kind="service", scope=route53, scope_fingerprint=fingerprint
        )
        ids["route53-credentials"] = credential.pk
    return {name: str(value) for name, value in ids.items()}


_PARAM = re.compile(r"\{([^}]+)\}")


def anchor(path_template: str, generated: dict[str, Any], objects: dict[str, str]) -> dict:
    """Path parameters naming real objects: each `{param}` gets the object of the collection
    named by the segment before it (`/node-pools/{id}/labels/{labelId}` -> the seeded pool and
    label). Parameters with no such collection keep their generated value."""
    segments = path_template.strip("/").split("/")
    anchored = dict(generated)
    for index, segment in enumerate(segments):
        match = _PARAM.fullmatch(segment)
        if match is None or index == 0:
            continue
        collection = segments[index - 1]
        if collection == "api-keys":
            collection = "me/api-keys" if segments[0] == "me" else "orgs/api-keys"
        if collection in objects:
            anchored[match.group(1)] = objects[collection]
    return anchored


# One valid body per write operation (contract path, without /api/v1), so every success shape
# is checked at least once: generated bodies rarely name real objects. "{servers}" and the like
# are the seeded objects of that collection.
VALID_BODIES: dict[str, Any] = {
    "POST /admin/actions": {"label": "Rotate", "description": "rotate", "make_target": "rotate"},
    "PATCH /admin/actions/{actionID}": {"label": "Renamed"},
    "POST /annotations": {"key": "example.com/owner", "value": "team a"},
    "PATCH /annotations/{id}": {"value": "team b"},
    "POST /clusters": {"name": "prod-1", "cluster_provider": "aws", "region": "eu-west-1"},
    "PATCH /clusters/{clusterID}": {"name": "prod-2"},
    "POST /clusters/{clusterID}/apps-load-balancer": {"load_balancer_id": "{load-balancers}"},
    "POST /clusters/{clusterID}/glueops-load-balancer": {"load_balancer_id": "{load-balancers}"},
    "POST /clusters/{clusterID}/bastion": {"server_id": "{bastions}"},
    "POST /clusters/{clusterID}/captain-domain": {"domain_id": "{domains}"},
    "POST /clusters/{clusterID}/control-plane-record-set": {"record_set_id": "{records}"},
    "POST /clusters/{clusterID}/node-pools": {"node_pool_id": "{node-pools}"},
    "POST /clusters/{clusterID}/kubeconfig": {"kubeconfig": "apiVersion: v1\nkind: Config\n"},
    "POST /dns/domains": {
        "domain_name": "conformance.example.com",
        "credential_id": "{route53-credentials}",
    },
    "POST /dns/domains/{domain_id}/records": {
        "name": "www",
        "type": "A",
        "values": ["203.0.113.7"],
    },
    "PATCH /dns/records/{id}": {"ttl": 600},
    "POST /group-mappings": {"group_email": "conformance@acme.example", "role": "member"},
    "PATCH /group-mappings/{id}": {"role": "viewer"},
    "PATCH /group-sync": {"mode": "authoritative"},
    "POST /labels": {"key": "example.com/tier", "value": "web"},
    "PATCH /labels/{id}": {"value": "db"},
    "POST /load-balancers": {
        "name": "edge",
        "kind": "public",
        "public_ip_address": "203.0.113.30",
        "private_ip_address": "10.9.0.30",
    },
    "PATCH /load-balancers/{id}": {"name": "edge-2"},
    "PATCH /me": {"display_name": "Olivia"},
    "POST /me/api-keys": {"name": "ci"},
    "POST /node-pools": {"name": "workers", "role": "worker"},
    "PATCH /node-pools/{id}": {"name": "workers-2"},
    "POST /node-pools/{id}/annotations": {"annotation_ids": ["{annotations}"]},
    "POST /node-pools/{id}/labels": {"label_ids": ["{labels}"]},
    "POST /node-pools/{id}/servers": {"server_ids": ["{servers}"]},
    "POST /node-pools/{id}/taints": {"taint_ids": ["{taints}"]},
    "POST /orgs": {"name": "Initech"},
    "PATCH /orgs/{id}": {"name": "Spare 2"},
    "POST /orgs/{id}/api-keys": {"name": "terraform"},
    "POST /orgs/{id}/members": {"user_id": "{members}", "role": "viewer"},
    "POST /servers": {
        "hostname": "web-1",
        "private_ip_address": "10.9.0.11",
        "ssh_key_id": "{ssh}",
        "ssh_user": "ubuntu",
        "role": "worker",
    },
    "PATCH /servers/{id}": {"hostname": "web-2"},
    "POST /ssh": {"name": "deploy", "type": "ed25519"},
    "POST /taints": {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
    "PATCH /taints/{id}": {"value": "cpu"},
}


def valid_body(method: str, path: str, objects: dict[str, str]) -> Any:
    """The operation's valid body with its placeholders filled, or None."""
    template = VALID_BODIES.get(f"{method.upper()} {path.removeprefix('/api/v1')}")
    if template is None:
        return None
    text = json.dumps(template)
    for name, value in objects.items():
        text = text.replace("{" + name + "}", value)
    return None if re.search(r"\{[a-z-]+\}", text) else json.loads(text)


@dataclass
class Finding:
    operation: str
    check: str
    status: int | None
    detail: str

    def key(self) -> tuple[str, str, int | None]:
        return (self.operation, self.check, self.status)


@dataclass
class RunReport:
    findings: list[Finding] = field(default_factory=list)
    statuses: dict[str, set[int]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    calls: int = 0
    # Status of each operation's valid body (VALID_BODIES).
    valid: dict[str, int | None] = field(default_factory=dict)

    def record(self, operation: str, status: int) -> None:
        self.calls += 1
        self.statuses.setdefault(operation, set()).add(status)

    def add(self, finding: Finding) -> None:
        if finding.key() not in {f.key() for f in self.findings}:
            self.findings.append(finding)

    def unexpected(self, allowed: Callable[[Finding], bool]) -> list[Finding]:
        return [finding for finding in self.findings if not allowed(finding)]


def _check_name(failure: Any) -> str:
    return str(getattr(failure, "title", None) or type(failure).__name__)


CREDENTIAL_HEADERS = {"authorization", "x-api-key", "x-org-key", "x-org-secret", "x-org-id"}


def scrub_credentials(case: Any) -> None:
    """The credentials are ours: a generated value of a declared X-Org-ID would only ever be
    refused, and a generated credential header would be tried before the valid one."""
    case.headers = {
        name: value
        for name, value in (case.headers or {}).items()
        if name.lower() not in CREDENTIAL_HEADERS
    }


def send_and_check(
    case: Any,
    *,
    base_url: str,
    session: requests.Session,
    headers: dict[str, str],
    checks: list[Any],
    report: RunReport,
) -> int | None:
    """Send one case and record (rather than raise) what the checks find; its status."""
    from schemathesis.core.failures import FailureGroup

    label = f"{case.method.upper()} {case.operation.path}"
    scrub_credentials(case)
    try:
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
    except requests.RequestException as exc:
        report.add(Finding(label, "transport", None, repr(exc)))
        return None
    report.record(label, response.status_code)
    try:
        case.validate_response(response, checks=checks, headers=headers)
    except FailureGroup as group:
        for failure in group.exceptions:
            report.add(
                Finding(label, _check_name(failure), response.status_code, str(failure)[:600])
            )
    return response.status_code


def run_operations(
    operations: Iterable[Any],
    *,
    base_url: str,
    headers: dict[str, str],
    checks: list[Any],
    fresh_objects: Callable[[str, str], dict[str, str]],
    report: RunReport,
    modes: Iterable[Any] | None = None,
) -> None:
    """Every operation, a few seeded examples each (per generation mode), sent as generated and
    anchored on freshly seeded objects."""
    from schemathesis import GenerationMode

    session = requests.Session()

    send = {"base_url": base_url, "session": session, "headers": headers}

    def exercise(operation: Any, mode: Any, objects: dict[str, str]) -> None:
        @settings(HYPOTHESIS, max_examples=MAX_EXAMPLES[mode.value])
        @given(case=operation.as_strategy(generation_mode=mode))
        def one_case(case: Any) -> None:
            send_and_check(case, checks=checks, report=report, **send)
            if case.path_parameters:
                case.path_parameters = anchor(operation.path, case.path_parameters, objects)
                send_and_check(case, checks=checks, report=report, **send)

        try:
            one_case()
        except Unsatisfiable:
            # Negative mode and an operation with nothing to negate (no parameters, no body).
            if mode == GenerationMode.POSITIVE:
                raise

    for operation in operations:
        started = time.monotonic()
        objects = fresh_objects(operation.method, operation.path)
        for mode in modes or [GenerationMode.POSITIVE]:
            exercise(operation, mode, objects)
        body = valid_body(operation.method, operation.path, objects)
        if body is not None:
            names = {name: str(uuid.uuid4()) for name in _PARAM.findall(operation.path)}
            case = operation.Case(
                path_parameters=anchor(operation.path, names, objects),
                body=body,
                media_type="application/json",
            )
            report.valid[f"{operation.method.upper()} {operation.path}"] = send_and_check(
                case, checks=checks, report=report, **send
            )
        report.seconds[f"{operation.method.upper()} {operation.path}"] = time.monotonic() - started


def format_findings(findings: list[Finding]) -> str:
    lines = [f"{len(findings)} unexpected finding(s):"]
    for finding in sorted(findings, key=lambda f: (f.operation, f.check, f.status or 0)):
        lines.append(f"- {finding.operation} [{finding.check}] status={finding.status}")
        lines.append("    " + finding.detail.replace("\n", "\n    ")[:600])
    return "\n".join(lines)


def route_answers(method: str, path: str) -> bool:
    """Whether a route of ours serves `method` on `path` (`{param}`s filled with an id), asked of
    Django's URL resolver rather than of the network, so a missing route is named as such."""
    from django.urls import Resolver404, resolve

    from apps.core import handlers

    concrete = _PARAM.sub(lambda _: str(uuid.uuid4()), path)
    try:
        match = resolve(concrete)
    except Resolver404:
        return False
    if match.func is handlers.api_not_found:
        return False
    actions = getattr(match.func, "actions", None)
    if actions is not None:
        return method.lower() in actions
    view_class = getattr(match.func, "view_class", None)
    return view_class is not None and hasattr(view_class, method.lower())

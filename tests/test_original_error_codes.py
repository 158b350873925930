"""The original's error codes, route by route (docs/compatibility.md, "Error codes").

The original's handlers answer a malformed or unknown id with codes that differ per route
(`id_invalid` on servers, `bad_cluster_id` on clusters, `not_found` on load balancers, ...). A
client generated from it branches on `code`, so where the original has a code for the same
condition on the same route we answer that code; ours remain only where the original has none.
Each row sends one id malformed and then well-formed but unknown, every other id in the path
naming a real object of the organization.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from rest_framework.test import APIClient

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
from apps.infrastructure.tests.factories import (
    CredentialFactory,
    LoadBalancerFactory,
    ServerFactory,
    SSHKeyFactory,
)
from apps.orgs.tests.factories import MembershipFactory
from tests.test_isolation_matrix import METHODS, api_routes

pytestmark = pytest.mark.django_db

MALFORMED = "not-a-uuid"

# (method, path, the id probed, (status, code) when malformed, (status, code) when unknown)
# `{name}` in a path is a real object of the organization unless it is the one probed.
SERVER = ((400, "id_invalid"), (404, "server_not_found"))
SSH_KEY = ((400, "invalid_ssh_key_id"), (404, "ssh_key_not_found"))
CREDENTIAL = ((400, "bad_id"), (404, "not_found"))
LOAD_BALANCER = ((400, "bad_id"), (404, "not_found"))
LABEL = ((400, "id_required"), (404, "label_not_found"))
ANNOTATION = ((400, "bad_request"), (404, "not_found"))
TAINT = ((400, "bad_request"), (404, "not_found"))
NODE_POOL = ((400, "id_required"), (404, "node_pool_not_found"))
CLUSTER = ((400, "bad_cluster_id"), (404, "not_found"))
METADATA_CLUSTER = ((400, "bad_request"), (404, "not_found"))
METADATA = ((400, "bad_request"), (404, "not_found"))
DNS = ((400, "bad_id"), (404, "not_found"))
ACTION = ((400, "bad_action_id"), (404, "not_found"))
# Archer job ids were free strings in the original: any unknown one, well-formed or not, was 404.
ARCHER_JOB = ((404, "not_found"), (404, "not_found"))
DELETED = (204, "")

ROUTES: list[tuple[str, str, str, tuple[int, str], tuple[int, str]]] = [
    ("get", "/servers/{server}", "server", *SERVER),
    ("patch", "/servers/{server}", "server", *SERVER),
    ("delete", "/servers/{server}", "server", *SERVER),
    ("post", "/servers/{server}/reset-hostkey", "server", *SERVER),
    ("get", "/servers/{server}/logs", "server", *SERVER),
    ("get", "/ssh/{ssh}", "ssh", *SSH_KEY),
    ("delete", "/ssh/{ssh}", "ssh", *SSH_KEY),
    ("get", "/ssh/{ssh}/download?part=public", "ssh", *SSH_KEY),
    ("get", "/credentials/{credential}", "credential", *CREDENTIAL),
    ("patch", "/credentials/{credential}", "credential", *CREDENTIAL),
    ("delete", "/credentials/{credential}", "credential", *CREDENTIAL),
    ("post", "/credentials/{credential}/reveal", "credential", *CREDENTIAL),
    ("get", "/load-balancers/{lb}", "lb", *LOAD_BALANCER),
    ("patch", "/load-balancers/{lb}", "lb", *LOAD_BALANCER),
    ("delete", "/load-balancers/{lb}", "lb", *LOAD_BALANCER),
    ("get", "/labels/{label}", "label", *LABEL),
    ("patch", "/labels/{label}", "label", *LABEL),
    ("delete", "/labels/{label}", "label", LABEL[0], DELETED),
    ("get", "/annotations/{annotation}", "annotation", *ANNOTATION),
    ("patch", "/annotations/{annotation}", "annotation", *ANNOTATION),
    ("delete", "/annotations/{annotation}", "annotation", ANNOTATION[0], DELETED),
    ("get", "/taints/{taint}", "taint", *TAINT),
    ("patch", "/taints/{taint}", "taint", *TAINT),
    ("delete", "/taints/{taint}", "taint", TAINT[0], DELETED),
    ("get", "/node-pools/{pool}", "pool", *NODE_POOL),
    ("patch", "/node-pools/{pool}", "pool", *NODE_POOL),
    ("delete", "/node-pools/{pool}", "pool", NODE_POOL[0], DELETED),
    *[
        (method, f"/node-pools/{{pool}}/{kind}", "pool", *NODE_POOL)
        for kind in ("servers", "labels", "annotations", "taints")
        for method in ("get", "post")
    ],
    ("delete", "/node-pools/{pool}/servers/{server}", "pool", *NODE_POOL),
    ("delete", "/node-pools/{pool}/servers/{server}", "server", (400, "id_required"), DELETED),
    ("delete", "/node-pools/{pool}/labels/{label}", "label", (400, "id_required"), DELETED),
    ("delete", "/node-pools/{pool}/taints/{taint}", "taint", (400, "taintId_required"), DELETED),
    (
        "delete",
        "/node-pools/{pool}/annotations/{annotation}",
        "annotation",
        (400, "id_required"),
        DELETED,
    ),
    ("get", "/clusters/{cluster}", "cluster", *CLUSTER),
    ("patch", "/clusters/{cluster}", "cluster", *CLUSTER),
    ("delete", "/clusters/{cluster}", "cluster", *CLUSTER),
    *[
        (method, f"/clusters/{{cluster}}/{part}", "cluster", *CLUSTER)
        for part in (
            "captain-domain",
            "control-plane-record-set",
            "apps-load-balancer",
            "glueops-load-balancer",
            "bastion",
            "kubeconfig",
        )
        for method in ("post", "delete")
    ],
    ("post", "/clusters/{cluster}/node-pools", "cluster", *CLUSTER),
    ("delete", "/clusters/{cluster}/node-pools/{pool}", "cluster", *CLUSTER),
    (
        "delete",
        "/clusters/{cluster}/node-pools/{pool}",
        "pool",
        (400, "bad_nodepool_id"),
        (200, ""),  # idempotent: an unknown pool is not attached afterwards either
    ),
    ("get", "/clusters/{cluster}/runs", "cluster", *CLUSTER),
    ("get", "/clusters/{cluster}/runs/{run}", "cluster", *CLUSTER),
    ("get", "/clusters/{cluster}/runs/{run}", "run", (400, "bad_run_id"), (404, "not_found")),
    ("get", "/clusters/{cluster}/runs/{run}/logs", "cluster", *CLUSTER),
    ("get", "/clusters/{cluster}/runs/{run}/logs", "run", (400, "bad_run_id"), (404, "not_found")),
    ("post", "/clusters/{cluster}/runs/{run}/cancel", "cluster", *CLUSTER),
    (
        "post",
        "/clusters/{cluster}/runs/{run}/cancel",
        "run",
        (400, "bad_run_id"),
        (404, "not_found"),
    ),
    ("post", "/clusters/{cluster}/actions/{action}/runs", "cluster", *CLUSTER),
    (
        "post",
        "/clusters/{cluster}/actions/{action}/runs",
        "action",
        (400, "bad_action_id"),
        (404, "action_not_found"),
    ),
    ("get", "/clusters/{cluster}/metadata", "cluster", *METADATA_CLUSTER),
    ("post", "/clusters/{cluster}/metadata", "cluster", *METADATA_CLUSTER),
    ("get", "/clusters/{cluster}/metadata/{metadata}", "cluster", *METADATA_CLUSTER),
    ("get", "/clusters/{cluster}/metadata/{metadata}", "metadata", *METADATA),
    ("patch", "/clusters/{cluster}/metadata/{metadata}", "cluster", *METADATA_CLUSTER),
    ("patch", "/clusters/{cluster}/metadata/{metadata}", "metadata", *METADATA),
    ("delete", "/clusters/{cluster}/metadata/{metadata}", "cluster", *METADATA_CLUSTER),
    ("delete", "/clusters/{cluster}/metadata/{metadata}", "metadata", METADATA[0], DELETED),
    ("get", "/admin/actions/{action}", "action", *ACTION),
    ("patch", "/admin/actions/{action}", "action", *ACTION),
    ("delete", "/admin/actions/{action}", "action", *ACTION),
    ("get", "/dns/domains/{domain}", "domain", *DNS),
    ("patch", "/dns/domains/{domain}", "domain", *DNS),
    ("delete", "/dns/domains/{domain}", "domain", *DNS),
    ("get", "/dns/domains/{domain}/records", "domain", *DNS),
    ("post", "/dns/domains/{domain}/records", "domain", *DNS),
    ("get", "/dns/records/{record}", "record", *DNS),
    ("patch", "/dns/records/{record}", "record", *DNS),
    ("delete", "/dns/records/{record}", "record", *DNS),
    ("get", "/orgs/{org}", "org", (400, "invalid_id"), (404, "not_found")),
    ("delete", "/orgs/{org}/members/{member}", "member", (400, "invalid_user_id"), DELETED),
    (
        "delete",
        "/orgs/{org}/api-keys/{org_key}",
        "org_key",
        (400, "invalid_key_id"),
        (404, "not_found"),
    ),
    ("delete", "/me/api-keys/{my_key}", "my_key", (400, "invalid_id"), (404, "not_found")),
    ("post", "/admin/archer/jobs/{job}/retry", "job", *ARCHER_JOB),
    ("post", "/admin/archer/jobs/{job}/cancel", "job", *ARCHER_JOB),
]

# Bodies valid but for the id probed, so the answer is about that id.
BODIES: dict[str, dict[str, Any]] = {
    "/clusters/{cluster}/metadata": {"key": "team", "value": "core"},
    "/clusters/{cluster}/kubeconfig": {"kubeconfig": "apiVersion: v1\nkind: Config\n"},
    "/dns/domains/{domain}/records": {"name": "www", "type": "A", "values": ["192.0.2.1"]},
}


@pytest.fixture
def world(org, client_for) -> dict[str, Any]:
    """An owner (also a platform admin) of `org`, and one object of every kind it owns."""
    user = UserFactory(is_admin=True)
    MembershipFactory(user=user, organization=org, role="owner")
    cluster = ClusterFactory(organization=org)
    pool = NodePoolFactory(organization=org)
    server = ServerFactory(organization=org)
    bastion = ServerFactory(organization=org, role="bastion", public_ip_address="198.51.100.9")
    label, annotation = LabelFactory(organization=org), AnnotationFactory(organization=org)
    taint = TaintFactory(organization=org)
    domain = DomainFactory(organization=org)
    action = ActionFactory()
    teammate = UserFactory()
    MembershipFactory(user=teammate, organization=org, role="member")
    ids = {
        "server": server.pk,
        "ssh": SSHKeyFactory(organization=org).pk,
        "credential": CredentialFactory(organization=org).pk,
        "lb": LoadBalancerFactory(organization=org).pk,
        "label": label.pk,
        "annotation": annotation.pk,
        "taint": taint.pk,
        "pool": pool.pk,
        "cluster": cluster.pk,
        "run": ClusterRunFactory(cluster=cluster, action_ref=action).pk,
        "action": action.pk,
        "metadata": ClusterMetadataFactory(cluster=cluster).pk,
        "domain": domain.pk,
        "record": RecordSetFactory(domain=domain).pk,
        "org": org.pk,
        "member": teammate.pk,
        "org_key": account_services.api_key_create_for_org(organization=org).key.pk,
        "my_key": account_services.api_key_create_for_user(user=user).key.pk,
        "job": uuid.uuid4(),
    }
    bodies = {
        "/node-pools/{pool}/servers": {"server_ids": [str(server.pk)]},
        "/node-pools/{pool}/labels": {"label_ids": [str(label.pk)]},
        "/node-pools/{pool}/annotations": {"annotation_ids": [str(annotation.pk)]},
        "/node-pools/{pool}/taints": {"taint_ids": [str(taint.pk)]},
        "/clusters/{cluster}/captain-domain": {"domain_id": str(domain.pk)},
        "/clusters/{cluster}/control-plane-record-set": {"record_set_id": str(ids["record"])},
        "/clusters/{cluster}/apps-load-balancer": {"load_balancer_id": str(ids["lb"])},
        "/clusters/{cluster}/glueops-load-balancer": {"load_balancer_id": str(ids["lb"])},
        "/clusters/{cluster}/bastion": {"server_id": str(bastion.pk)},
        "/clusters/{cluster}/node-pools": {"node_pool_id": str(pool.pk)},
        **BODIES,
    }
    return {"client": client_for(user, org), "ids": ids, "bodies": bodies}


def _send(world: dict[str, Any], method: str, path: str, probed: str, value: str) -> Any:
    ids = {name: str(pk) for name, pk in world["ids"].items()} | {probed: value}
    body = world["bodies"].get(path.split("?")[0], {}) if method in ("post", "patch") else None
    client: APIClient = world["client"]
    return getattr(client, method)("/api/v1" + path.format(**ids), body, format="json")


def _answer(response: Any) -> tuple[int, str]:
    code = response.json().get("code", "") if response.content else ""
    return response.status_code, code


@pytest.mark.parametrize(
    ("method", "path", "probed", "malformed", "missing"),
    ROUTES,
    ids=[f"{method.upper()} {path} ({probed})" for method, path, probed, *_ in ROUTES],
)
def test_an_id_is_refused_with_the_originals_code_for_the_route(
    world, method, path, probed, malformed, missing
):
    assert _answer(_send(world, method, path, probed, MALFORMED)) == malformed
    assert _answer(_send(world, method, path, probed, str(uuid.uuid4()))) == missing


# Objects named in the body of an attach route (the original's codes, already ours).
REFERENCES = [
    ("/clusters/{cluster}/captain-domain", "domain_id", "domain_not_found"),
    ("/clusters/{cluster}/control-plane-record-set", "record_set_id", "recordset_not_found"),
    ("/clusters/{cluster}/apps-load-balancer", "load_balancer_id", "lb_not_found"),
    ("/clusters/{cluster}/glueops-load-balancer", "load_balancer_id", "lb_not_found"),
    ("/clusters/{cluster}/bastion", "server_id", "server_not_found"),
    ("/clusters/{cluster}/node-pools", "node_pool_id", "nodepool_not_found"),
]


@pytest.mark.parametrize(("path", "field", "code"), REFERENCES)
def test_an_unknown_object_named_in_an_attach_body_answers_the_originals_code(
    world, path, field, code
):
    world["bodies"][path] = {field: str(uuid.uuid4())}
    assert _answer(_send(world, "post", path, "-", "")) == (404, code)


@pytest.mark.parametrize("kind", ["servers", "labels", "annotations", "taints"])
def test_a_malformed_id_in_a_node_pool_attach_body_is_the_originals_bad_request(world, kind):
    field = f"{kind[:-1]}_ids"
    world["bodies"][f"/node-pools/{{pool}}/{kind}"] = {field: [MALFORMED]}
    response = _send(world, "post", f"/node-pools/{{pool}}/{kind}", "-", "")
    assert _answer(response) == (400, "bad_request")


def _routes_with_an_id() -> dict[str, set[str]]:
    """Every API path naming an object (a `{param}` in it), with the methods it answers."""
    routes: dict[str, set[str]] = {}
    for route in api_routes():
        if "{" in route.template and "{provider}" not in route.template:
            routes.setdefault("/" + route.template, set()).add(route.method)
    return routes


def test_a_method_the_route_lacks_is_405_even_when_the_id_is_malformed(world):
    """The original's router refused the method before any handler parsed the id."""
    client: APIClient = world["client"]
    wrong = []
    for template, methods in _routes_with_an_id().items():
        path = re.sub(r"\{[^}]+\}", MALFORMED, template)
        for method in sorted(set(METHODS) - methods):
            status = getattr(client, method)(path, {}, format="json").status_code
            if status != 405:
                wrong.append(f"{method.upper()} {template}: {status}")
    assert wrong == [], "\n".join(wrong)

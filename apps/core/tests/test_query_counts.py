"""Every list answers in the same number of queries for 10 rows as for 100 (issue 15, P1).

One table of list routes, each with a way to add rows; the test reads the list at 10 rows,
adds 90 more, reads it again and demands exactly as many queries. Rows carry what their
responses show (a cluster its node pool with a server, label, taint and annotation, its bastion,
load balancers, domain, record set and metadata), so a nested collection that starts costing a
query per row fails here. The apps' own tests pin smaller counts for some of these routes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.accounts.models import APIKey
from apps.accounts.tests.factories import UserFactory
from apps.clusters.models import ClusterRun
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
from apps.dns.tests.factories import RecordSetFactory
from apps.infrastructure.tests.factories import (
    CredentialFactory,
    LoadBalancerFactory,
    ServerFactory,
    SSHKeyFactory,
)
from apps.orgs.tests.factories import MembershipFactory, OrganizationFactory


@dataclass
class World:
    org: object
    user: object
    ssh_key: object
    cluster: object = None
    pool: object = None


def _server(w: World, **kwargs):
    return ServerFactory(organization=w.org, ssh_key=w.ssh_key, **kwargs)


def _full_cluster(w: World, _: int) -> None:
    org = w.org
    cluster = ClusterFactory(
        organization=org,
        bastion_server=_server(w, role="bastion"),
        apps_load_balancer=LoadBalancerFactory(organization=org),
        glueops_load_balancer=LoadBalancerFactory(organization=org, kind="glueops"),
        control_plane_record_set=RecordSetFactory(
            organization=org, domain__organization=org, domain__credential__organization=org
        ),
    )
    cluster.captain_domain = cluster.control_plane_record_set.domain
    cluster.save(update_fields=["captain_domain"])
    pool = NodePoolFactory(organization=org)
    through = {"organization": org}
    cluster.node_pools.add(pool, through_defaults=through)
    pool.servers.add(_server(w), through_defaults=through)
    pool.labels.add(LabelFactory(organization=org), through_defaults=through)
    pool.taints.add(TaintFactory(organization=org), through_defaults=through)
    pool.annotations.add(AnnotationFactory(organization=org), through_defaults=through)
    ClusterMetadataFactory(cluster=cluster, organization=org)


def _pool_with_sets(w: World, _: int) -> None:
    org, through = w.org, {"organization": w.org}
    pool = NodePoolFactory(organization=org)
    pool.servers.add(_server(w), through_defaults=through)
    pool.labels.add(LabelFactory(organization=org), through_defaults=through)
    pool.taints.add(TaintFactory(organization=org), through_defaults=through)
    pool.annotations.add(AnnotationFactory(organization=org), through_defaults=through)


def _the_pool(w: World) -> object:
    if w.pool is None:
        w.pool = NodePoolFactory(organization=w.org)
    return w.pool


def _the_cluster(w: World) -> object:
    if w.cluster is None:
        w.cluster = ClusterFactory(organization=w.org)
    return w.cluster


def _attach(kind: str, make: Callable[[World], object]) -> Callable[[World, int], None]:
    def grow(w: World, _: int) -> None:
        getattr(_the_pool(w), kind).add(make(w), through_defaults={"organization": w.org})

    return grow


def _api_key(w: World, n: int, *, org_key: bool) -> None:
    APIKey.objects.create(
        scope=APIKey.Scope.ORG if org_key else APIKey.Scope.USER,
        purpose="org" if org_key else "user",
        name=f"key-{n}",
        public_id=f"pub{n:08d}{'o' if org_key else 'u'}",
        secret_hash="not-a-real-hash",
        user=None if org_key else w.user,
        organization=w.org if org_key else None,
    )


@dataclass
class Case:
    path: Callable[[World], str]
    grow: Callable[[World, int], None]


CASES: dict[str, Case] = {
    "servers": Case(lambda w: "/api/v1/servers", lambda w, n: _server(w)),
    "ssh keys": Case(lambda w: "/api/v1/ssh", lambda w, n: SSHKeyFactory(organization=w.org)),
    "credentials": Case(
        lambda w: "/api/v1/credentials", lambda w, n: CredentialFactory(organization=w.org)
    ),
    "load balancers": Case(
        lambda w: "/api/v1/load-balancers", lambda w, n: LoadBalancerFactory(organization=w.org)
    ),
    "labels": Case(lambda w: "/api/v1/labels", lambda w, n: LabelFactory(organization=w.org)),
    "taints": Case(lambda w: "/api/v1/taints", lambda w, n: TaintFactory(organization=w.org)),
    "annotations": Case(
        lambda w: "/api/v1/annotations", lambda w, n: AnnotationFactory(organization=w.org)
    ),
    "node pools": Case(lambda w: "/api/v1/node-pools", _pool_with_sets),
    "clusters": Case(lambda w: "/api/v1/clusters", _full_cluster),
    "node pool servers": Case(
        lambda w: f"/api/v1/node-pools/{_the_pool(w).pk}/servers", _attach("servers", _server)
    ),
    "node pool labels": Case(
        lambda w: f"/api/v1/node-pools/{_the_pool(w).pk}/labels",
        _attach("labels", lambda w: LabelFactory(organization=w.org)),
    ),
    "node pool taints": Case(
        lambda w: f"/api/v1/node-pools/{_the_pool(w).pk}/taints",
        _attach("taints", lambda w: TaintFactory(organization=w.org)),
    ),
    "node pool annotations": Case(
        lambda w: f"/api/v1/node-pools/{_the_pool(w).pk}/annotations",
        _attach("annotations", lambda w: AnnotationFactory(organization=w.org)),
    ),
    "cluster runs": Case(
        lambda w: f"/api/v1/clusters/{_the_cluster(w).pk}/runs",
        lambda w, n: ClusterRunFactory(
            cluster=_the_cluster(w), organization=w.org, status=ClusterRun.Status.SUCCEEDED
        ),
    ),
    "cluster metadata": Case(
        lambda w: f"/api/v1/clusters/{_the_cluster(w).pk}/metadata",
        lambda w, n: ClusterMetadataFactory(cluster=_the_cluster(w), organization=w.org),
    ),
    "organizations": Case(
        lambda w: "/api/v1/orgs", lambda w, n: MembershipFactory(user=w.user, role="member")
    ),
    "members": Case(
        lambda w: f"/api/v1/orgs/{w.org.pk}/members",
        lambda w, n: MembershipFactory(organization=w.org),
    ),
    "org keys": Case(
        lambda w: f"/api/v1/orgs/{w.org.pk}/api-keys",
        lambda w, n: _api_key(w, n, org_key=True),
    ),
    "my api keys": Case(
        lambda w: "/api/v1/me/api-keys", lambda w, n: _api_key(w, n, org_key=False)
    ),
    "actions": Case(lambda w: "/api/v1/admin/actions", lambda w, n: ActionFactory()),
}


def _count(client, path: str) -> tuple[int, list]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200, response.content
    return len(queries.captured_queries), response.json()


@pytest.mark.parametrize("name", list(CASES))
def test_a_list_costs_as_many_queries_for_100_rows_as_for_10(
    name, db, client_for, django_capture_on_commit_callbacks
):
    case = CASES[name]
    # The organization's data key is cached once its transaction commits (apps.core.crypto.keys);
    # running the commit hooks here gives the lists the warm cache a running server has.
    with django_capture_on_commit_callbacks(execute=True):
        org = OrganizationFactory(name="Acme")
        # The owner sees every list, join secrets included, so every serializer path runs.
        user = UserFactory(primary_email="olivia@acme.example", is_admin=True)
        MembershipFactory(user=user, organization=org, role="owner")
        world = World(org=org, user=user, ssh_key=SSHKeyFactory(organization=org, name="shared"))
    api = client_for(user, org)
    baseline = len(api.get(case.path(world)).json())

    for n in range(10):
        case.grow(world, n)
    few, body = _count(api, case.path(world))
    assert len(body) == baseline + 10
    for n in range(10, 100):
        case.grow(world, n)
    many, body = _count(api, case.path(world))

    assert len(body) == baseline + 100
    assert many == few, f"{name}: {few} queries for 10 rows, {many} for 100"

"""Concurrent writers against the real PostgreSQL: each request runs in its own thread and its
own database connection, released together by a barrier."""

import threading
from functools import partial

import pytest
from django.db import IntegrityError, connection, transaction

from apps.clusters.models import Cluster, ClusterRun, NodePoolServer
from apps.clusters.tests.factories import (
    ActionFactory,
    ClusterFactory,
    ClusterRunFactory,
    NodePoolFactory,
)
from apps.dns.tests.factories import DomainFactory
from apps.infrastructure.models import Server
from apps.infrastructure.tests.factories import LoadBalancerFactory, ServerFactory

pytestmark = pytest.mark.django_db(transaction=True)


def run_together(*calls):
    """Run the callables at the same moment in separate threads; return their results."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def worker(index, call):
        try:
            barrier.wait()
            results[index] = call()
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_two_clients_attaching_different_things_to_one_cluster_both_win(client_for, member, org):
    for _ in range(5):
        cluster = ClusterFactory(organization=org)
        domain = DomainFactory(organization=org)
        bastion = ServerFactory(
            organization=org, role=Server.Role.BASTION, public_ip_address="198.51.100.1"
        )
        lb = LoadBalancerFactory(organization=org)
        base = f"/api/v1/clusters/{cluster.pk}"
        a, b, c = (client_for(member, org) for _ in range(3))
        results = run_together(
            lambda a=a, base=base, domain=domain: a.post(
                f"{base}/captain-domain", {"domain_id": str(domain.pk)}, format="json"
            ),
            lambda b=b, base=base, bastion=bastion: b.post(
                f"{base}/bastion", {"server_id": str(bastion.pk)}, format="json"
            ),
            lambda c=c, base=base, lb=lb: c.post(
                f"{base}/apps-load-balancer", {"load_balancer_id": str(lb.pk)}, format="json"
            ),
        )
        assert [r.status_code for r in results] == [200, 200, 200]
        cluster.refresh_from_db()
        assert cluster.captain_domain_id == domain.pk
        assert cluster.bastion_server_id == bastion.pk
        assert cluster.apps_load_balancer_id == lb.pk


def test_concurrent_node_pool_and_kubeconfig_writes_keep_each_other(client_for, member, org):
    cluster = ClusterFactory(organization=org)
    pools = NodePoolFactory.create_batch(2, organization=org)
    base = f"/api/v1/clusters/{cluster.pk}"
    clients = [client_for(member, org) for _ in range(3)]
    results = run_together(
        lambda: clients[0].post(
            f"{base}/node-pools", {"node_pool_id": str(pools[0].pk)}, format="json"
        ),
        lambda: clients[1].post(
            f"{base}/node-pools", {"node_pool_id": str(pools[1].pk)}, format="json"
        ),
        lambda: clients[2].post(f"{base}/kubeconfig", {"kubeconfig": "CANARY-KUBE"}, format="json"),
    )
    assert [r.status_code for r in results] == [200, 200, 200]
    cluster = Cluster.objects.get(pk=cluster.pk)
    assert set(cluster.node_pools.values_list("pk", flat=True)) == {p.pk for p in pools}
    assert cluster.kubeconfig == "CANARY-KUBE"


def test_overlapping_node_pool_attaches_both_succeed_without_duplicates(client_for, member, org):
    pool = NodePoolFactory(organization=org)
    servers = ServerFactory.create_batch(4, organization=org)
    ids = [str(s.pk) for s in servers]
    a, b = client_for(member, org), client_for(member, org)
    url = f"/api/v1/node-pools/{pool.pk}/servers"
    results = run_together(
        lambda: a.post(url, {"server_ids": ids[:3]}, format="json"),
        lambda: b.post(url, {"server_ids": ids[1:]}, format="json"),
    )
    assert [r.status_code for r in results] == [204, 204]
    assert NodePoolServer.objects.filter(node_pool=pool).count() == 4


def test_two_concurrent_run_requests_give_exactly_one_run(client_for, member, org):
    for _ in range(5):
        cluster = ClusterFactory(organization=org)
        action = ActionFactory()
        url = f"/api/v1/clusters/{cluster.pk}/actions/{action.pk}/runs"
        a, b = client_for(member, org), client_for(member, org)
        results = run_together(lambda a=a, url=url: a.post(url), lambda b=b, url=url: b.post(url))
        assert sorted(r.status_code for r in results) == [201, 409]
        created = next(r for r in results if r.status_code == 201).json()
        refused = next(r for r in results if r.status_code == 409).json()
        assert refused["code"] == "run_active"
        assert created["id"] in refused["message"]
        assert ClusterRun.objects.filter(cluster=cluster).count() == 1


def test_the_database_itself_refuses_a_second_active_run(org):
    run = ClusterRunFactory(cluster=ClusterFactory(organization=org), status="running")
    with pytest.raises(IntegrityError), transaction.atomic():
        ClusterRunFactory(cluster=run.cluster, action_ref=run.action_ref, status="queued")
    # Finished runs do not count.
    ClusterRunFactory(cluster=run.cluster, status="failed")
    ClusterRunFactory(cluster=run.cluster, status="succeeded")


def test_a_run_racing_past_the_check_is_refused_by_the_index_and_named(org):
    """A run inserted (not yet committed) by another transaction is invisible to our check; our
    insert then waits on the partial unique index and, once the other commits, fails with
    409 naming the other run instead of creating a second active run."""
    from apps.clusters import services
    from apps.core.api.errors import APIError

    cluster = ClusterFactory(organization=org)
    action = ActionFactory()
    inserted = threading.Event()
    release = threading.Event()
    other = {}

    def competitor():
        try:
            with transaction.atomic():
                other["run"] = ClusterRun.objects.create(
                    organization=org, cluster=cluster, action=action.make_target
                )
                inserted.set()
                release.wait(timeout=10)
        finally:
            connection.close()

    thread = threading.Thread(target=competitor)
    thread.start()
    assert inserted.wait(timeout=10)
    # Commit the competitor shortly after our insert starts waiting on the index.
    threading.Timer(0.5, release.set).start()
    with pytest.raises(APIError) as refused:
        services.cluster_run_create(cluster=cluster, action=action)
    thread.join(timeout=10)
    assert refused.value.status_code == 409
    assert refused.value.error_code == "run_active"
    assert str(other["run"].pk) in refused.value.message
    assert ClusterRun.objects.filter(cluster=cluster).count() == 1


def test_a_patch_to_bastion_racing_a_node_pool_attach_never_leaves_a_bastion_in_a_pool(
    client_for, member, org
):
    for _ in range(5):
        server = ServerFactory(organization=org, public_ip_address="198.51.100.2")
        pool = NodePoolFactory(organization=org)
        a, b = client_for(member, org), client_for(member, org)
        patched, attached = run_together(
            lambda a=a, server=server: a.patch(
                f"/api/v1/servers/{server.pk}", {"role": "bastion"}, format="json"
            ),
            lambda b=b, pool=pool, server=server: b.post(
                f"/api/v1/node-pools/{pool.pk}/servers",
                {"server_ids": [str(server.pk)]},
                format="json",
            ),
        )
        server.refresh_from_db()
        in_pool = NodePoolServer.objects.filter(server=server).exists()
        # Whichever came first wins; the other is refused with the rule's 400.
        codes = sorted([patched.status_code, attached.status_code])
        assert codes in ([200, 400], [204, 400]), codes
        assert not (server.role == Server.Role.BASTION and in_pool)


def test_a_patch_away_from_bastion_racing_a_cluster_attach_never_leaves_a_non_bastion_bastion(
    client_for, member, org
):
    for _ in range(5):
        server = ServerFactory(
            organization=org, role=Server.Role.BASTION, public_ip_address="198.51.100.3"
        )
        cluster = ClusterFactory(organization=org)
        a, b = client_for(member, org), client_for(member, org)
        run_together(
            lambda a=a, server=server: a.patch(
                f"/api/v1/servers/{server.pk}", {"role": "worker"}, format="json"
            ),
            lambda b=b, cluster=cluster, server=server: b.post(
                f"/api/v1/clusters/{cluster.pk}/bastion",
                {"server_id": str(server.pk)},
                format="json",
            ),
        )
        server.refresh_from_db()
        cluster.refresh_from_db()
        assert not (cluster.bastion_server_id == server.pk and server.role != "bastion")


def _pool_with_labels(org, count):
    from apps.clusters.models import NodePoolLabel
    from apps.clusters.tests.factories import LabelFactory

    pool = NodePoolFactory(organization=org)
    labels = LabelFactory.create_batch(count, organization=org)
    for label in labels:
        NodePoolLabel.objects.create(organization=org, node_pool=pool, label=label)
    return pool, labels


def test_three_simultaneous_deletes_of_one_pool_record_the_delete_and_its_detaches_once(
    client_for, member, org
):
    from apps.audit import events
    from apps.audit.models import AuditEntry

    for _ in range(3):
        pool, labels = _pool_with_labels(org, 10)
        clients = [client_for(member, org) for _ in range(3)]
        url = f"/api/v1/node-pools/{pool.pk}"
        results = run_together(*(partial(c.delete, url) for c in clients))

        # A repeated delete still answers 204, as the original does; only the one that removed
        # the row says so in the log.
        assert [r.status_code for r in results] == [204, 204, 204]
        deletes = AuditEntry.objects.filter(event=events.RESOURCE_DELETE, object_id=str(pool.pk))
        assert deletes.count() == 1
        detaches = AuditEntry.objects.filter(
            event=events.RESOURCE_DETACH,
            object_type="clusters.nodepoollabel",
            changes__node_pool_id__before=str(pool.pk),
        )
        assert detaches.count() == 10


def test_two_simultaneous_detaches_of_one_label_record_one_detach(client_for, member, org):
    from apps.audit import events
    from apps.audit.models import AuditEntry

    for _ in range(3):
        pool, labels = _pool_with_labels(org, 1)
        clients = [client_for(member, org) for _ in range(2)]
        url = f"/api/v1/node-pools/{pool.pk}/labels/{labels[0].pk}"
        results = run_together(*(partial(c.delete, url) for c in clients))

        assert [r.status_code for r in results] == [204, 204]
        detaches = AuditEntry.objects.filter(
            event=events.RESOURCE_DETACH, changes__label_id__before=str(labels[0].pk)
        )
        assert detaches.count() == 1


def test_attaching_patching_and_deleting_one_pool_at_once_never_deadlocks(client_for, member, org):
    from apps.clusters.tests.factories import LabelFactory

    statuses = []
    for round_ in range(6):
        pool, labels = _pool_with_labels(org, 4)
        more = LabelFactory.create_batch(4, organization=org)
        base = f"/api/v1/node-pools/{pool.pk}"
        c = [client_for(member, org) for _ in range(5)]
        results = run_together(
            partial(
                c[0].post,
                f"{base}/labels",
                {"label_ids": [str(x.pk) for x in more]},
                format="json",
            ),
            partial(c[1].patch, base, {"name": f"renamed-{round_}"}, format="json"),
            partial(c[2].delete, f"{base}/labels/{labels[0].pk}"),
            partial(c[3].post, f"{base}/labels", {"label_ids": [str(labels[1].pk)]}, format="json"),
            partial(c[4].delete, base),
        )
        statuses.append([r.status_code for r in results])
    # Whatever the order, each request either did its work or found the pool gone (404).
    for attach, patch, detach, reattach, delete in statuses:
        assert attach in (204, 404) and reattach in (204, 404)
        assert patch in (200, 404)
        assert detach in (204, 404)
        assert delete == 204


def test_deleting_a_pool_and_one_of_its_servers_at_once_records_each_membership_once(
    client_for, member, org
):
    """Both deletes take the membership rows with them; only the one that removed a row may say
    so in the audit log (found by benchmarks/load_faults.py: 1 create and 2 delete entries)."""
    from apps.audit import events
    from apps.audit.models import AuditEntry
    from apps.clusters.tests.factories import NodePoolFactory

    for _ in range(5):
        pool = NodePoolFactory(organization=org)
        servers = [ServerFactory(organization=org) for _ in range(3)]
        for server in servers:
            NodePoolServer.objects.create(organization=org, node_pool=pool, server=server)
        pool_client, server_client = client_for(member, org), client_for(member, org)
        results = run_together(
            partial(pool_client.delete, f"/api/v1/node-pools/{pool.pk}"),
            partial(server_client.delete, f"/api/v1/servers/{servers[0].pk}"),
        )

        assert [r.status_code for r in results] == [204, 204]
        detaches = AuditEntry.objects.filter(
            event=events.RESOURCE_DETACH,
            object_type="clusters.nodepoolserver",
            changes__node_pool_id__before=str(pool.pk),
        )
        assert detaches.count() == 3


def _membership_detaches(kind, item):
    from apps.audit import events
    from apps.audit.models import AuditEntry

    return AuditEntry.objects.filter(
        event=events.RESOURCE_DETACH,
        object_type=f"clusters.nodepool{kind}",
        **{f"changes__{kind}_id__before": str(item.pk)},
    ).count()


@pytest.mark.parametrize(
    ("kind", "factory_name"),
    [("label", "LabelFactory"), ("annotation", "AnnotationFactory"), ("taint", "TaintFactory")],
)
def test_deleting_a_label_while_it_is_detached_records_its_membership_removal_once(
    client_for, member, org, kind, factory_name
):
    """Found by benchmarks/load_faults.py: a label membership "gone with 1 create and 2 delete
    entries" when DELETE /labels/{id} and a detach of it removed the row at the same moment."""
    from apps.clusters import models
    from apps.clusters.tests import factories

    through = getattr(models, f"NodePool{kind.capitalize()}")
    for _ in range(5):
        pools = [NodePoolFactory(organization=org) for _ in range(3)]
        item = getattr(factories, factory_name)(organization=org)
        for pool in pools:
            through.objects.create(organization=org, node_pool=pool, **{kind: item})
        delete_client, detach_client = client_for(member, org), client_for(member, org)
        results = run_together(
            partial(delete_client.delete, f"/api/v1/{kind}s/{item.pk}"),
            partial(detach_client.delete, f"/api/v1/node-pools/{pools[1].pk}/{kind}s/{item.pk}"),
        )

        assert [r.status_code for r in results] == [204, 204]
        assert not through.objects.filter(**{f"{kind}_id": item.pk}).exists()
        assert _membership_detaches(kind, item) == 3


def test_deleting_a_label_and_a_pool_holding_it_at_once_records_each_membership_once(
    client_for, member, org
):
    from apps.clusters.models import NodePoolLabel
    from apps.clusters.tests.factories import LabelFactory

    for _ in range(5):
        pools = [NodePoolFactory(organization=org) for _ in range(3)]
        label = LabelFactory(organization=org)
        for pool in pools:
            NodePoolLabel.objects.create(organization=org, node_pool=pool, label=label)
        label_client, pool_client = client_for(member, org), client_for(member, org)
        results = run_together(
            partial(label_client.delete, f"/api/v1/labels/{label.pk}"),
            partial(pool_client.delete, f"/api/v1/node-pools/{pools[0].pk}"),
        )

        assert [r.status_code for r in results] == [204, 204]
        assert _membership_detaches("label", label) == 3


def test_deleting_a_label_while_it_is_attached_to_its_pools_never_deadlocks(
    client_for, member, org
):
    """The label delete holds the label's row and then waits for the pools; an attach holds a
    pool and then inserts a row referring to the label. Neither may wait on the other, and an
    attach that loses to the delete is told the label is gone (404), not a bare 409."""
    from apps.clusters.models import Label, NodePoolLabel
    from apps.clusters.tests.factories import LabelFactory

    for _ in range(10):
        pools = [NodePoolFactory(organization=org) for _ in range(2)]
        label = LabelFactory(organization=org)
        NodePoolLabel.objects.create(organization=org, node_pool=pools[0], label=label)
        c = [client_for(member, org) for _ in range(3)]
        results = run_together(
            partial(c[0].delete, f"/api/v1/labels/{label.pk}"),
            partial(
                c[1].post,
                f"/api/v1/node-pools/{pools[0].pk}/labels",
                {"label_ids": [str(label.pk)]},
                format="json",
            ),
            partial(c[2].delete, f"/api/v1/node-pools/{pools[0].pk}/labels/{label.pk}"),
        )

        deleted, attached, detached = (r.status_code for r in results)
        assert deleted == 204
        assert attached in (204, 404), results[1].content
        assert detached == 204
        assert not Label.objects.filter(pk=label.pk).exists()
        assert not NodePoolLabel.objects.filter(label_id=label.pk).exists()

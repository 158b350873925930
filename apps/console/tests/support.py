"""Helpers for the console's tests."""

from __future__ import annotations

from typing import Any

from apps.jobs.models import JobRun

PASSWORD = "CANARY-break-glass-password-1"


def job_run(**fields: Any) -> JobRun:
    """A job run as the jobs framework writes it (the console's tests only read runs)."""
    return JobRun.objects.create(**{"kind": "bastion_sweep", "queue": "maintenance", **fields})


def cluster_stack(organization: Any, tag: str = "prod") -> dict[str, Any]:
    """A cluster with everything its page shows: a bastion (failed, with an error), a node pool
    of two workers, a domain with an external record set in conflict, a load balancer and
    metadata."""
    from apps.clusters.models import ClusterNodePool, NodePoolServer
    from apps.clusters.tests.factories import (
        ClusterFactory,
        ClusterMetadataFactory,
        NodePoolFactory,
    )
    from apps.dns.models import RecordSet
    from apps.dns.tests.factories import DomainFactory, RecordSetFactory
    from apps.infrastructure.models import Server
    from apps.infrastructure.tests.factories import LoadBalancerFactory, ServerFactory

    org = organization
    bastion = ServerFactory(
        organization=org,
        hostname=f"bastion-{tag}",
        role=Server.Role.BASTION,
        status=Server.Status.FAILED,
        last_error="connection refused on port 2222",
    )
    workers = [
        ServerFactory(organization=org, hostname=f"worker-{n}", status=Server.Status.READY)
        for n in (1, 2)
    ]
    pool = NodePoolFactory(organization=org, name="workers")
    for worker in workers:
        NodePoolServer.objects.create(organization=org, node_pool=pool, server=worker)
    domain = DomainFactory(organization=org, domain_name=f"{tag}.example")
    record_set = RecordSetFactory(
        domain=domain,
        name="api",
        owner=RecordSet.Owner.EXTERNAL,
        status=RecordSet.Status.FAILED,
        last_error="record exists and is not ours",
    )
    lb = LoadBalancerFactory(organization=org, name="apps-lb")
    cluster = ClusterFactory(
        organization=org,
        name=tag,
        bastion_server=bastion,
        captain_domain=domain,
        control_plane_record_set=record_set,
        apps_load_balancer=lb,
    )
    ClusterNodePool.objects.create(organization=org, cluster=cluster, node_pool=pool)
    ClusterMetadataFactory(cluster=cluster, key="team", value="platform")
    return {
        "bastion": bastion,
        "workers": workers,
        "pool": pool,
        "domain": domain,
        "record_set": record_set,
        "lb": lb,
        "cluster": cluster,
    }

"""FastReadMixin renders exactly what DRF's own Serializer.to_representation renders.

Each read serializer that uses the mixin renders a fully loaded row twice — once through the
mixin, once through DRF's implementation underneath it — and the two must be equal, field for
field (nested serializers use the mixin in both; each has its own case here).
"""

from __future__ import annotations

import pytest
from django.db.models import Count

from apps.clusters import serializers as cs
from apps.clusters.models import Cluster, ClusterRun, NodePool
from apps.clusters.selectors import cluster_queryset, node_pool_queryset
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
from apps.core.api.serializers import FastReadMixin, prefetched
from apps.dns.tests.factories import RecordSetFactory
from apps.infrastructure import serializers as infra
from apps.infrastructure.models import SSHKey
from apps.infrastructure.tests.factories import (
    CredentialFactory,
    LoadBalancerFactory,
    ServerFactory,
    SSHKeyFactory,
)


def _both(serializer_class, instance) -> tuple[dict, dict]:
    serializer = serializer_class(instance)
    fast = FastReadMixin.to_representation(serializer, instance)
    drf = super(FastReadMixin, serializer).to_representation(instance)
    return fast, drf


@pytest.fixture
def cluster(org):
    key = SSHKeyFactory(organization=org)
    record_set = RecordSetFactory(
        organization=org, domain__organization=org, domain__credential__organization=org
    )
    cluster = ClusterFactory(
        organization=org,
        bastion_server=ServerFactory(organization=org, ssh_key=key, role="bastion"),
        apps_load_balancer=LoadBalancerFactory(organization=org),
        glueops_load_balancer=LoadBalancerFactory(
            organization=org, kind="glueops", public_ip_address=None
        ),
        control_plane_record_set=record_set,
        captain_domain=record_set.domain,
    )
    pool = NodePoolFactory(organization=org)
    through = {"organization": org}
    cluster.node_pools.add(pool, through_defaults=through)
    pool.servers.add(
        ServerFactory(organization=org, ssh_key=key, public_ip_address="203.0.113.7"),
        ServerFactory(organization=org, ssh_key=key),
        through_defaults=through,
    )
    pool.labels.add(LabelFactory(organization=org), through_defaults=through)
    pool.taints.add(TaintFactory(organization=org), through_defaults=through)
    pool.annotations.add(AnnotationFactory(organization=org, value=""), through_defaults=through)
    ClusterMetadataFactory(cluster=cluster, organization=org)
    ClusterRunFactory(cluster=cluster, organization=org, status=ClusterRun.Status.SUCCEEDED)
    return cluster


def test_a_loaded_cluster_and_everything_in_it_render_as_drf_renders_them(cluster):
    loaded = cluster_queryset().get(pk=cluster.pk)
    pool = prefetched(loaded, "node_pools")[0]
    cases = [
        (cs.ClusterSerializer, loaded),
        (cs.NodePoolSerializer, pool),
        (cs.ServerSummarySerializer, loaded.bastion_server),
        (cs.LoadBalancerSummarySerializer, loaded.apps_load_balancer),
        (cs.LoadBalancerSummarySerializer, loaded.glueops_load_balancer),
        (cs.DomainSummarySerializer, loaded.captain_domain),
        (cs.RecordSetSummarySerializer, loaded.control_plane_record_set),
        (cs.LabelSerializer, prefetched(pool, "labels")[0]),
        (cs.TaintSerializer, prefetched(pool, "taints")[0]),
        (cs.AnnotationSerializer, prefetched(pool, "annotations")[0]),
        (cs.ClusterMetadataSerializer, prefetched(loaded, "metadata")[0]),
        (cs.ClusterRunSerializer, ClusterRun.objects.get(cluster=cluster)),
        (cs.ActionSerializer, ActionFactory()),
    ]
    cases += [(infra.ServerSerializer, s) for s in prefetched(pool, "servers")]
    for serializer_class, instance in cases:
        fast, drf = _both(serializer_class, instance)
        assert fast == drf, serializer_class.__name__
        assert list(fast) == list(drf), serializer_class.__name__


def test_rows_loaded_without_the_selectors_render_the_same(cluster):
    # No prefetching at all: nested collections come from the related managers.
    bare_cluster = Cluster.objects.get(pk=cluster.pk)
    bare_pool = NodePool.objects.get(pk=prefetched(bare_cluster, "node_pools")[0].pk)
    assert (
        _both(cs.ClusterSerializer, bare_cluster)[0]
        == _both(cs.ClusterSerializer, cluster_queryset().get(pk=cluster.pk))[0]
    )
    fast, drf = _both(cs.NodePoolSerializer, bare_pool)
    assert fast == drf
    assert fast == _both(cs.NodePoolSerializer, node_pool_queryset().get(pk=bare_pool.pk))[0]


def test_infrastructure_rows_render_as_drf_renders_them(org):
    key = SSHKeyFactory(organization=org)
    ServerFactory(organization=org, ssh_key=key)
    annotated = SSHKey.objects.annotate(server_count=Count("servers")).get(pk=key.pk)
    cases = [
        (infra.SSHKeySerializer, annotated),
        (infra.SSHKeySerializer, key),  # not annotated: server_count is skipped, as DRF does
        (infra.CredentialSerializer, CredentialFactory(organization=org)),
        (infra.LoadBalancerSerializer, LoadBalancerFactory(organization=org)),
        (
            infra.LoadBalancerSerializer,
            LoadBalancerFactory(organization=org, public_ip_address=None),
        ),
    ]
    for serializer_class, instance in cases:
        fast, drf = _both(serializer_class, instance)
        assert fast == drf, serializer_class.__name__
        assert list(fast) == list(drf), serializer_class.__name__

"""Reads with their relations loaded in a fixed number of queries."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from apps.clusters.models import Cluster, ClusterMetadata, NodePool

SECRET_COLUMNS = ("kubeconfig", "random_token", "certificate_key")
NODE_POOL_RELATIONS = ("servers", "labels", "taints", "annotations")


def node_pool_queryset() -> QuerySet[NodePool]:
    """Node pools with their servers, labels, taints and annotations: five queries for any
    number of pools. Each set is loaded as a plain list, `prefetched_<name>` (what the
    serializers read, see apps.core.api.serializers.FastReadMixin): the related manager's own
    cache would build a manager and a filtered queryset per pool and per set, which cost more
    than the rows themselves. `pool.<name>.all()` still works, with a query of its own."""
    return NodePool.objects.prefetch_related(
        *(Prefetch(name, to_attr=f"prefetched_{name}") for name in NODE_POOL_RELATIONS)
    )


def cluster_queryset() -> QuerySet[Cluster]:
    """Clusters with everything a ClusterResponse shows: one joined query for the single
    references, one per collection (node pools, their four sets, metadata), whatever the
    number of clusters, pools and servers. Collections are plain lists, `prefetched_<name>`,
    as in node_pool_queryset."""
    # The secrets are left in the database; only an explicit reveal loads (and decrypts) them.
    return (
        Cluster.objects.defer(*SECRET_COLUMNS)
        .select_related(
            "captain_domain",
            "control_plane_record_set__domain",
            "apps_load_balancer",
            "glueops_load_balancer",
            "bastion_server",
        )
        .prefetch_related(
            Prefetch("node_pools", queryset=node_pool_queryset(), to_attr="prefetched_node_pools"),
            Prefetch(
                "metadata",
                queryset=ClusterMetadata.objects.order_by("key"),
                to_attr="prefetched_metadata",
            ),
        )
    )


def with_join_secrets(queryset: QuerySet[Cluster]) -> QuerySet[Cluster]:
    """The same clusters with the join token and certificate key loaded in the same query (for
    principals that may read them), so a list stays at a constant number of queries; the
    kubeconfig stays deferred."""
    return queryset.defer(None).defer("kubeconfig")


def cluster_secrets(*, cluster: Cluster) -> dict[str, str]:
    """The decrypted kubeconfig, join token and certificate key of one cluster, for an explicit
    reveal. Loaded in a query of their own, since list reads leave them deferred."""
    row = (
        Cluster.objects.filter(pk=cluster.pk, organization_id=cluster.organization_id)
        .only("id", "organization_id", *SECRET_COLUMNS)
        .get()
    )
    return {column: str(getattr(row, column) or "") for column in SECRET_COLUMNS}

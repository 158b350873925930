"""Models of the clusters app, one module per entity, re-exported here."""

from apps.clusters.models.actions import Action, ClusterRun
from apps.clusters.models.clusters import Cluster, ClusterMetadata, ClusterNodePool
from apps.clusters.models.node_pools import (
    NodePool,
    NodePoolAnnotation,
    NodePoolLabel,
    NodePoolServer,
    NodePoolTaint,
)
from apps.clusters.models.scheduling import Annotation, Label, Taint

__all__ = [
    "Action",
    "Annotation",
    "Cluster",
    "ClusterMetadata",
    "ClusterNodePool",
    "ClusterRun",
    "Label",
    "NodePool",
    "NodePoolAnnotation",
    "NodePoolLabel",
    "NodePoolServer",
    "NodePoolTaint",
    "Taint",
]

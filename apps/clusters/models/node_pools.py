"""Node pools: a named group of servers sharing a role and Kubernetes metadata."""

from __future__ import annotations

from django.db import models

from apps.core.models import OrgOwnedModel
from apps.core.validators import validate_name


class NodePool(OrgOwnedModel):
    """A group of servers with one role (master or worker) and the labels, annotations and
    taints their nodes get. Attachments are additive sets (join rows below)."""

    class Role(models.TextChoices):
        MASTER = "master"
        WORKER = "worker"

    name = models.CharField(max_length=255, validators=[validate_name])
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.WORKER)
    servers = models.ManyToManyField(
        "infrastructure.Server", through="NodePoolServer", related_name="node_pools"
    )
    labels = models.ManyToManyField(
        "clusters.Label", through="NodePoolLabel", related_name="node_pools"
    )
    annotations = models.ManyToManyField(
        "clusters.Annotation", through="NodePoolAnnotation", related_name="node_pools"
    )
    taints = models.ManyToManyField(
        "clusters.Taint", through="NodePoolTaint", related_name="node_pools"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class NodePoolServer(OrgOwnedModel):
    """A server's membership in a node pool."""

    node_pool = models.ForeignKey(NodePool, on_delete=models.CASCADE, related_name="+")
    server = models.ForeignKey("infrastructure.Server", on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["node_pool", "server"],
                name="%(app_label)s_%(class)s_unique_node_pool_server",
            )
        ]

    def __str__(self) -> str:
        return str(self.server)


class NodePoolLabel(OrgOwnedModel):
    """A label attached to a node pool."""

    node_pool = models.ForeignKey(NodePool, on_delete=models.CASCADE, related_name="+")
    label = models.ForeignKey("Label", on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["node_pool", "label"],
                name="%(app_label)s_%(class)s_unique_node_pool_label",
            )
        ]

    def __str__(self) -> str:
        return str(self.label)


class NodePoolAnnotation(OrgOwnedModel):
    """An annotation attached to a node pool."""

    node_pool = models.ForeignKey(NodePool, on_delete=models.CASCADE, related_name="+")
    annotation = models.ForeignKey("Annotation", on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["node_pool", "annotation"],
                name="%(app_label)s_%(class)s_unique_node_pool_annotation",
            )
        ]

    def __str__(self) -> str:
        return str(self.annotation)


class NodePoolTaint(OrgOwnedModel):
    """A taint attached to a node pool."""

    node_pool = models.ForeignKey(NodePool, on_delete=models.CASCADE, related_name="+")
    taint = models.ForeignKey("Taint", on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["node_pool", "taint"],
                name="%(app_label)s_%(class)s_unique_node_pool_taint",
            )
        ]

    def __str__(self) -> str:
        return str(self.taint)

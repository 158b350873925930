"""Clusters: a K3s cluster's desired shape, what it runs on and the secrets it joins with."""

from __future__ import annotations

from django.db import models

from apps.core.fields import EncryptedTextField
from apps.core.models import OrgOwnedModel
from apps.core.validators import validate_name


class Cluster(OrgOwnedModel):
    """A K3s cluster: its node pools, bastion, DNS and load balancers, and lifecycle status.

    Every change made through the API puts the cluster back to `pre_pending` ("needs
    validation") and clears `last_error`; otherwise status moves only through cluster actions.
    The join token, certificate key and kubeconfig are secrets, encrypted at rest and never part
    of a list response. Related objects are detached (SET NULL) when deleted elsewhere, rather
    than blocking the delete or failing as the original did; the deleting service also puts the
    cluster back to `pre_pending` (`services.cluster_release_references`).
    """

    class Status(models.TextChoices):
        PRE_PENDING = "pre_pending"
        INCOMPLETE = "incomplete"
        PENDING = "pending"
        PROVISIONING = "provisioning"
        READY = "ready"
        FAILED = "failed"
        BOOTSTRAPPING = "bootstrapping"

    name = models.CharField(max_length=255, validators=[validate_name])
    provider = models.CharField(max_length=255, blank=True)
    region = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PRE_PENDING)
    last_error = models.TextField(blank=True, default="")
    captain_domain = models.ForeignKey(
        "dns.Domain", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    control_plane_record_set = models.ForeignKey(
        "dns.RecordSet", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    apps_load_balancer = models.ForeignKey(
        "infrastructure.LoadBalancer",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    glueops_load_balancer = models.ForeignKey(
        "infrastructure.LoadBalancer",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    bastion_server = models.ForeignKey(
        "infrastructure.Server",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="bastion_of_clusters",
    )
    node_pools = models.ManyToManyField(
        "clusters.NodePool", through="ClusterNodePool", related_name="clusters"
    )
    # kubeadm-style bootstrap token `<6 hex>.<16 hex>` and a 64-hex certificate key, generated
    # on create with `secrets`.
    random_token = EncryptedTextField(blank=True, default="")
    certificate_key = EncryptedTextField(blank=True, default="")
    kubeconfig = EncryptedTextField(blank=True, default="")
    docker_image = models.CharField(max_length=512, blank=True)
    docker_tag = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class ClusterNodePool(OrgOwnedModel):
    """A node pool's membership in a cluster."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="+")
    node_pool = models.ForeignKey("NodePool", on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["cluster", "node_pool"],
                name="%(app_label)s_%(class)s_unique_cluster_node_pool",
            )
        ]

    def __str__(self) -> str:
        return str(self.node_pool)


class ClusterMetadata(OrgOwnedModel):
    """A key/value pair stored with a cluster and handed to its actions. Keys are lowercase
    and unique per cluster."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="metadata")
    key = models.CharField(max_length=255)
    value = models.TextField()

    class Meta:
        ordering = ["created_at"]
        verbose_name_plural = "cluster metadata"
        constraints = [
            models.UniqueConstraint(
                fields=["cluster", "key"], name="%(app_label)s_%(class)s_unique_cluster_key"
            )
        ]

    def __str__(self) -> str:
        return self.key

"""The action catalogue and the runs of actions against clusters."""

from __future__ import annotations

from django.db import models

from apps.core.models import OrgOwnedModel, TimeStampedModel


class Action(TimeStampedModel):
    """A make target that can be run against any cluster. Global, managed by platform admins."""

    label = models.CharField(max_length=255, unique=True)
    description = models.TextField(blank=True)
    make_target = models.CharField(max_length=255, unique=True)

    class Meta:
        ordering = ["label"]

    def __str__(self) -> str:
        return self.label


class ClusterRun(OrgOwnedModel):
    """One execution of an action against a cluster. `action` keeps the make target as it was
    when the run was requested, so editing or deleting the catalogue entry never rewrites
    history. At most one run per cluster is queued or running (a partial unique index)."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        # The value the original's worker writes (its constant said "success").
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELED = "canceled"

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)

    cluster = models.ForeignKey("Cluster", on_delete=models.CASCADE, related_name="runs")
    action_ref = models.ForeignKey(
        Action, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    action = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True, default="")
    finished_at = models.DateTimeField(null=True, blank=True)
    job_id = models.CharField(max_length=255, blank=True, default="", db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["cluster"],
                condition=models.Q(status__in=["queued", "running"]),
                name="%(app_label)s_%(class)s_unique_cluster_active",
            )
        ]

    def __str__(self) -> str:
        return f"{self.action} on {self.cluster_id} ({self.status})"

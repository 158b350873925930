"""Labels, annotations and taints: the Kubernetes metadata node pools put on their nodes."""

from __future__ import annotations

from django.db import models

from apps.clusters.validators import (
    validate_annotation_value,
    validate_label_value,
    validate_qualified_name,
)
from apps.core.models import OrgOwnedModel


class Label(OrgOwnedModel):
    """A Kubernetes node label (`key=value`), attachable to node pools. Not unique: two labels
    with the same key and value are two rows, as in the original."""

    key = models.CharField(max_length=317, validators=[validate_qualified_name])
    value = models.CharField(max_length=63, blank=True, validators=[validate_label_value])

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


class Annotation(OrgOwnedModel):
    """A Kubernetes node annotation; the value is free text (size-limited)."""

    key = models.CharField(max_length=317, validators=[validate_qualified_name])
    value = models.TextField(blank=True, validators=[validate_annotation_value])

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.key


class Taint(OrgOwnedModel):
    """A Kubernetes node taint (`key=value:Effect`)."""

    class Effect(models.TextChoices):
        NO_SCHEDULE = "NoSchedule"
        PREFER_NO_SCHEDULE = "PreferNoSchedule"
        NO_EXECUTE = "NoExecute"

    key = models.CharField(max_length=317, validators=[validate_qualified_name])
    value = models.CharField(max_length=63, blank=True, validators=[validate_label_value])
    effect = models.CharField(max_length=16, choices=Effect.choices)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.key}={self.value}:{self.effect}"

"""DNS domains (a Route 53 hosted zone reached through a credential) and their record sets.

Only the data lives here for now; the DNS API and the reconciler come with the DNS issue.
"""

from __future__ import annotations

from django.db import models

from apps.core.models import OrgOwnedModel


class Domain(OrgOwnedModel):
    """A DNS zone Autoglue manages records in, bound to a Route 53 hosted zone through an AWS
    credential of the same organization."""

    class Status(models.TextChoices):
        PENDING = "pending"
        PROVISIONING = "provisioning"
        READY = "ready"
        FAILED = "failed"

    domain_name = models.CharField(max_length=253)
    zone_id = models.CharField(max_length=128, blank=True, default="")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    last_error = models.TextField(blank=True, default="")
    # RESTRICT, not PROTECT: a credential still serving a zone cannot vanish underneath the
    # reconciler (deleting it alone raises RestrictedError, answered 409 `credential_in_use`),
    # yet the organization's own cascade, which deletes the domains too, may delete it.
    credential = models.ForeignKey(
        "infrastructure.Credential", on_delete=models.RESTRICT, related_name="domains"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "domain_name"],
                name="%(app_label)s_%(class)s_unique_organization_domain_name",
            )
        ]

    def __str__(self) -> str:
        return self.domain_name


class RecordSet(OrgOwnedModel):
    """A record set (name, type) in a domain. `name` is relative to the domain ("@" or "" is
    the apex); `owner` says whether Autoglue created it and may change or delete it."""

    class Status(models.TextChoices):
        PENDING = "pending"
        PROVISIONING = "provisioning"
        READY = "ready"
        FAILED = "failed"

    class Owner(models.TextChoices):
        AUTOGLUE = "autoglue"
        EXTERNAL = "external"
        UNKNOWN = "unknown"

    class Type(models.TextChoices):
        A = "A"
        AAAA = "AAAA"
        CNAME = "CNAME"
        TXT = "TXT"
        MX = "MX"
        NS = "NS"
        SRV = "SRV"
        CAA = "CAA"

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="record_sets")
    name = models.CharField(max_length=253)
    type = models.CharField(max_length=10, choices=Type.choices, db_index=True)
    ttl = models.PositiveIntegerField(null=True, blank=True)
    values = models.JSONField(default=list, blank=True)
    fingerprint = models.CharField(max_length=64, blank=True, default="", db_index=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    owner = models.CharField(max_length=16, choices=Owner.choices, default=Owner.UNKNOWN)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["domain", "name", "type"],
                name="%(app_label)s_%(class)s_unique_domain_name_type",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} {self.type}"

    @property
    def fqdn(self) -> str:
        """The record's full name, e.g. `api.example.com` (the domain itself for the apex)."""
        if self.name in ("", "@"):
            return self.domain.domain_name
        return f"{self.name}.{self.domain.domain_name}"

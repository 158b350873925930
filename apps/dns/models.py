"""DNS domains (a Route 53 hosted zone reached through a credential), their record sets, the
organization's DNS settings and reviewable plans. The reconciler is in `reconcile.py` and
`services.py`; docs/dns.md describes the design.
"""

from __future__ import annotations

from django.db import models

from apps.core.fields import EncryptedTextField
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
    # The hosted zone's own name, learnt when the zone is checked: a domain may be a subdomain
    # of its zone, and names outside the zone (e.g. the external-dns guard of the apex) are
    # never written.
    zone_name = models.CharField(max_length=253, blank=True, default="")
    # End of the last reconcile that read the zone (the schedule re-reads idle zones for drift).
    last_reconciled_at = models.DateTimeField(null=True, blank=True)
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
        # Labels as DNS writes them (TextChoices would make `Aaaa` and `Cname` of them).
        A = "A", "A"
        AAAA = "AAAA", "AAAA"
        CNAME = "CNAME", "CNAME"
        TXT = "TXT", "TXT"
        MX = "MX", "MX"
        NS = "NS", "NS"
        SRV = "SRV", "SRV"
        CAA = "CAA", "CAA"

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="record_sets")
    name = models.CharField(max_length=253)
    # The name exactly as the client last sent it (`api.example.com.`, `API`, ...): answered
    # back so a client comparing what it sent with what it reads (Terraform) sees no change.
    # `name` is the one normalized form everything else (uniqueness, reconcile) uses.
    name_as_given = models.CharField(max_length=253, blank=True, default="")
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
    def name_for_client(self) -> str:
        """The name as the client gave it (the stored form for rows written before it was
        kept, or by the console)."""
        return self.name_as_given or self.name

    @property
    def fqdn(self) -> str:
        """The record's full name, e.g. `api.example.com` (the domain itself for the apex)."""
        if self.name in ("", "@"):
            return self.domain.domain_name
        return f"{self.name}.{self.domain.domain_name}"


class DNSSettings(OrgOwnedModel):
    """An organization's DNS preferences. With `require_plan`, the reconciler applies nothing
    on its own: changes reach Route 53 only when someone applies a plan they reviewed."""

    require_plan = models.BooleanField(default=False)
    # The organization's key for signing ownership markers (32 random bytes, base64), made on
    # first use and never shown: a marker value is trusted only with a valid signature, so a
    # value someone else wrote into the zone can neither claim nor disown a record
    # (docs/dns.md, "Ownership"). Encrypted under the organization's data key like any secret,
    # so key rotation re-encrypts it and leaves the signing key, and every marker, unchanged.
    marker_key = EncryptedTextField(blank=True, default="")

    class Meta:
        verbose_name = "DNS settings"
        verbose_name_plural = "DNS settings"
        constraints = [
            models.UniqueConstraint(
                fields=["organization"], name="%(app_label)s_%(class)s_unique_organization"
            )
        ]

    def __str__(self) -> str:
        return f"DNS settings of {self.organization.name}"


class DNSPlan(OrgOwnedModel):
    """What the next reconcile of a domain would change, as computed at `created_at` from the
    zone's contents (`zone_digest`) and the domain's record sets (`desired_digest`). Applying it
    is refused once either has changed, so what was reviewed is exactly what is applied."""

    class Status(models.TextChoices):
        OPEN = "open"
        APPLYING = "applying"
        APPLIED = "applied"
        STALE = "stale"
        FAILED = "failed"

    domain = models.ForeignKey(Domain, on_delete=models.CASCADE, related_name="plans")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    zone_digest = models.CharField(max_length=64)
    desired_digest = models.CharField(max_length=64)
    changes = models.JSONField(default=list, blank=True)
    summary = models.JSONField(default=dict, blank=True)
    job_id = models.UUIDField(null=True, blank=True)
    applied_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        verbose_name = "DNS plan"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"plan {self.pk} ({self.status})"

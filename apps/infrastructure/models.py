"""Models of the infrastructure app: SSH keys, servers, cloud credentials and load balancers.

Every row belongs to one organization (`OrgOwnedModel`). Secrets (an SSH private key, a
credential's secret JSON) live only in `EncryptedTextField` columns and never in `__str__`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from apps.core.fields import EncryptedTextField
from apps.core.models import OrgOwnedModel
from apps.core.validators import (
    validate_hostname,
    validate_name,
    validate_ssh_user,
    validate_target_ip,
)


class SSHKey(OrgOwnedModel):
    """A server-generated SSH key pair. The public half is plain; the private half (PEM for RSA,
    OpenSSH format for Ed25519, both loadable by paramiko) is encrypted at rest."""

    class KeyType(models.TextChoices):
        RSA = "rsa"
        ED25519 = "ed25519"

    name = models.CharField(max_length=255, validators=[validate_name])
    key_type = models.CharField(max_length=16, choices=KeyType.choices, default=KeyType.RSA)
    bits = models.PositiveIntegerField(null=True, blank=True)
    comment = models.CharField(max_length=255, blank=True, default="")
    public_key = models.TextField()
    fingerprint = models.CharField(max_length=128, db_index=True)
    private_key = EncryptedTextField()

    class Meta:
        verbose_name = "SSH key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.fingerprint})"


class Server(OrgOwnedModel):
    """A machine Autoglue reaches over SSH with one of the org's keys. The SSH host key is pinned
    on first contact (`ssh_host_key`, base64 wire format, and its algorithm) and cleared by
    reset-hostkey so the next connection learns it again."""

    class Role(models.TextChoices):
        MASTER = "master"
        WORKER = "worker"
        BASTION = "bastion"

    class Status(models.TextChoices):
        PENDING = "pending"
        PROVISIONING = "provisioning"
        READY = "ready"
        FAILED = "failed"

    hostname = models.CharField(max_length=253, blank=True, default="")
    # The contract renders an absent public IP as null.
    public_ip_address = models.GenericIPAddressField(null=True, blank=True)
    private_ip_address = models.GenericIPAddressField()
    ssh_user = models.CharField(max_length=64)
    ssh_port = models.PositiveIntegerField(
        default=22, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    # RESTRICT, not PROTECT: a key in use must not vanish under a server (deleting it alone is a
    # 409), yet the organization's own cascade, which deletes the servers too, may delete it.
    ssh_key = models.ForeignKey(SSHKey, on_delete=models.RESTRICT, related_name="servers")
    role = models.CharField(max_length=16, choices=Role.choices)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    # Why the last bootstrap failed (empty once it succeeds); shown to operators.
    last_error = models.TextField(blank=True, default="")
    ssh_host_key = models.TextField(blank=True, default="")
    ssh_host_key_algo = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.hostname or self.private_ip_address} ({self.role})"

    # What reaches SSH (apps.core.validators). Checked here rather than as field validators so
    # the admin console gets them without altering the existing columns' migrations.
    SSH_FIELD_VALIDATORS: dict[str, Callable[[str], None]] = {
        "hostname": validate_hostname,
        "ssh_user": validate_ssh_user,
        "public_ip_address": validate_target_ip,
        "private_ip_address": validate_target_ip,
    }

    def clean_fields(self, exclude: Collection[str] | None = None) -> None:
        exclude = set(exclude or ())
        errors: dict[str, list[ValidationError]] = {}
        try:
            super().clean_fields(exclude=exclude)
        except ValidationError as exc:
            errors = exc.update_error_dict(errors)
        for field, validator in self.SSH_FIELD_VALIDATORS.items():
            value = getattr(self, field)
            if field in exclude or field in errors or value in (None, ""):
                continue
            try:
                validator(value)
            except ValidationError as exc:
                errors.setdefault(field, []).extend(exc.error_list)
        if errors:
            raise ValidationError(errors)

    def clean(self) -> None:
        # The API checks this through its org-scoped field; this covers the admin console.
        if (
            self.ssh_key_id
            and self.organization_id
            and self.ssh_key.organization_id != self.organization_id
        ):
            raise ValidationError({"ssh_key": "must belong to the server's organization"})


class Credential(OrgOwnedModel):
    """A cloud/provider credential. `provider`/`kind`/`schema_version` pick the secret's schema
    and `scope_kind`/`scope_version` the scope's, from the registry in `registry.py`. The scope
    is stored canonical (sorted keys) with its SHA-256 `scope_fingerprint`; one credential per
    (org, provider, scope kind, exact scope). The secret JSON is encrypted at rest."""

    provider = models.CharField(max_length=50)
    kind = models.CharField(max_length=50)
    schema_version = models.PositiveIntegerField(default=1)
    name = models.CharField(max_length=100, blank=True, default="", validators=[validate_name])
    scope_kind = models.CharField(max_length=20)
    scope_version = models.PositiveIntegerField(default=1)
    scope = models.JSONField(default=dict, blank=True)
    scope_fingerprint = models.CharField(max_length=64, db_index=True)
    account_id = models.CharField(max_length=32, blank=True, default="")
    region = models.CharField(max_length=32, blank=True, default="")
    secret = EncryptedTextField()

    class Meta:
        ordering = ["-updated_at"]
        indexes = [
            models.Index(fields=["provider", "kind"], name="infra_credential_provider_kind"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "provider", "scope_kind", "scope_fingerprint"],
                name="infrastructure_credential_unique_org_provider_scope",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider}/{self.kind} {self.name}".strip()


class LoadBalancer(OrgOwnedModel):
    """A record of an externally created load balancer (no cloud API calls)."""

    class Kind(models.TextChoices):
        GLUEOPS = "glueops"
        PUBLIC = "public"

    name = models.CharField(max_length=255, validators=[validate_name])
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # The original stores empty strings when omitted; null is the natural empty value here.
    public_ip_address = models.GenericIPAddressField(null=True, blank=True)
    private_ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        verbose_name = "load balancer"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

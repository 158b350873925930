"""Organizations and memberships: the tenancy every resource hangs off."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from apps.core.models import TimeStampedModel


class Organization(TimeStampedModel):
    """A tenant. `domain` is an e-mail domain for auto-joining people who sign in with SSO; it
    only takes effect once verified (`domain_verified_at`), and a verified domain is unique."""

    name = models.CharField(max_length=255)
    # The contract renders an unset domain as null, so NULL is the natural empty value here.
    domain = models.CharField(max_length=253, null=True, blank=True)  # noqa: DJ001
    domain_verified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                Lower("domain"),
                condition=models.Q(domain_verified_at__isnull=False),
                name="orgs_organization_unique_verified_domain",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Membership(TimeStampedModel):
    """A user's role in an organization; one per (user, organization)."""

    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        MEMBER = "member"
        # Beyond the original: read-only access, no writes, no secrets.
        VIEWER = "viewer"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "organization"], name="orgs_membership_unique_user_organization"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"

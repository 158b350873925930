"""Workspace group sync: per organization, which Google groups grant which role, how to read
them (a service account acting for a delegated admin), and which roles sync itself granted."""

from __future__ import annotations

from django.db import models

from apps.core.fields import EncryptedTextField
from apps.core.models import OrgOwnedModel
from apps.orgs.models import Membership


class GroupSyncSettings(OrgOwnedModel):
    """How an organization's Google groups are read, and whether sync is authoritative.

    The service-account key (Google's JSON key file) is a secret: encrypted at rest, never
    answered by the API. `last_sync_*` are bookkeeping written with `update()` (no audit entry
    per run)."""

    class Mode(models.TextChoices):
        # Groups add members and raise roles; nothing is ever lowered by sync.
        ADDITIVE = "additive"
        # Also lowers or removes what sync granted earlier once the groups no longer grant it.
        AUTHORITATIVE = "authoritative"

    enabled = models.BooleanField(default=False)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.ADDITIVE)
    service_account_key = EncryptedTextField(blank=True, default="")
    # Read from the key when it is stored; not a secret, shown so people know which account.
    service_account_email = models.EmailField(blank=True, default="")
    # The Workspace admin the service account acts for (domain-wide delegation's `sub`).
    delegated_subject = models.EmailField(blank=True, default="")
    last_sync_at = models.DateTimeField(null=True, blank=True)
    last_sync_status = models.CharField(max_length=16, blank=True, default="")
    last_sync_error = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        verbose_name = "Workspace group settings"
        verbose_name_plural = "Workspace group settings"
        constraints = [
            models.UniqueConstraint(
                fields=["organization"], name="%(app_label)s_%(class)s_unique_organization"
            )
        ]

    def __str__(self) -> str:
        return f"Workspace group settings of {self.organization_id}"


class GroupRoleMapping(OrgOwnedModel):
    """Members of `group_email` (transitively) hold at least `role` in the organization."""

    group_email = models.CharField(max_length=254)
    role = models.CharField(max_length=16, choices=Membership.Role.choices)

    class Meta:
        ordering = ["group_email"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "group_email"],
                name="%(app_label)s_%(class)s_unique_organization_group_email",
            )
        ]

    def __str__(self) -> str:
        return f"{self.group_email} → {self.role}"


class GroupGrant(OrgOwnedModel):
    """A membership role that sync set: what distinguishes it from a role a person gave.

    `role` is the role sync set and `group_email` the group that granted it; `base_role` is the
    role the membership had before sync raised it ("" when sync created the membership). While
    the membership still holds `role`, authoritative sync may lower it again (never below
    `base_role`) or remove a membership it created. Once anyone changes the role by hand the
    grant no longer matches and is dropped: the role is a person's decision from then on."""

    membership = models.OneToOneField(
        Membership, on_delete=models.CASCADE, related_name="group_grant"
    )
    role = models.CharField(max_length=16, choices=Membership.Role.choices)
    base_role = models.CharField(
        max_length=16, choices=Membership.Role.choices, blank=True, default=""
    )
    group_email = models.CharField(max_length=254)

    def __str__(self) -> str:
        return f"{self.role} from {self.group_email}"

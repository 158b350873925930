"""Base models every app builds on."""

from __future__ import annotations

import uuid
from typing import Any, Self

from django.db import DatabaseError, models
from django.http import Http404

# What Django raises when an UPDATE it was told to do found no row.
_NO_ROW_UPDATED = (
    "Forced update did not affect any rows.",
    "Save with update_fields did not affect any rows.",
)


class RowDeleted(Http404):
    """A change to a row that another request deleted meanwhile: answered 404 like any missing
    object (API and console), never a 500."""


class TimeStampedModel(models.Model):
    """UUID primary key (the API's ids) and creation/update times.

    A row loaded from the database is only ever UPDATEd by `save()`. Django's default falls back
    to an INSERT when the UPDATE finds no row, so a PATCH that raced a DELETE would bring the
    deleted row back (with a `create` audit entry); here that save raises `RowDeleted` instead.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding and not kwargs.get("force_insert"):
            kwargs["force_update"] = True
        try:
            super().save(*args, **kwargs)
        except DatabaseError as exc:
            if str(exc) in _NO_ROW_UPDATED:
                raise RowDeleted(f"{type(self).__name__} {self.pk} no longer exists") from None
            raise


class OrgQuerySet(models.QuerySet):
    def for_org(self, organization: models.Model | uuid.UUID) -> Self:
        org_id = getattr(organization, "pk", organization)
        return self.filter(organization_id=org_id)


class OrgOwnedModel(TimeStampedModel):
    """A row that belongs to exactly one organization; deleted with it.

    API code never queries these with `.objects.all()`: the tenant base viewset scopes every
    queryset with `for_org()`. Cross-org reads exist only in tasks and the admin console, each
    with a comment saying why.
    """

    organization = models.ForeignKey(
        "orgs.Organization", on_delete=models.CASCADE, related_name="+", db_index=True
    )

    objects = OrgQuerySet.as_manager()

    class Meta:
        abstract = True


class DataKey(TimeStampedModel):
    """A data-encryption key: 32 random bytes that encrypt the secrets of one organization (or of
    the platform itself when `organization` is null), stored only wrapped by a master key.

    Not an OrgOwnedModel because the platform's own keys (JWT signing keys' data key) have no
    organization. The master key that wrapped a row is recorded in `master_key_id` and is the one
    used to unwrap it, so rotating the master key never strands a row. New secrets use the
    highest `version` of their scope; older versions stay until no secret references them.
    Deleting an organization deletes its keys, which makes any stray copy of its ciphertext
    unreadable.
    """

    organization = models.ForeignKey(
        "orgs.Organization",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    version = models.PositiveIntegerField()
    # Id of the master key (configured outside the database) that wrapped `wrapped_key`.
    master_key_id = models.CharField(max_length=64, db_index=True)
    # base64url(nonce || AES-256-GCM(master key, data key) || tag); useless without the master key.
    wrapped_key = models.TextField()

    class Meta:
        ordering = ["organization_id", "version"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "version"],
                name="%(app_label)s_%(class)s_unique_organization_version",
                nulls_distinct=False,
            ),
        ]

    def __str__(self) -> str:
        scope = f"org {self.organization_id}" if self.organization_id else "platform"
        return f"data key v{self.version} of {scope} (wrapped by {self.master_key_id})"

"""Base models every app builds on."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Self

from django.db import models

if TYPE_CHECKING:
    from apps.orgs.models import Organization


class TimeStampedModel(models.Model):
    """UUID primary key (the API's ids) and creation/update times."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class OrgQuerySet(models.QuerySet):
    def for_org(self, organization: Organization | uuid.UUID) -> Self:
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

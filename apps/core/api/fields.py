"""Serializer fields that keep references inside the request's organization."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from apps.core.api.errors import not_found
from apps.core.tenancy import parse_uuid


class OrgScopedPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """A writable foreign key that only resolves rows of the serializer context's organization.

    A malformed id is a 400 naming the field; an id that does not exist in this organization
    (including one that exists in another) is a 404 with `not_found_code`, exactly as if the
    caller had asked for that object directly.
    """

    def __init__(self, *, not_found_code: str = "not_found", **kwargs: Any) -> None:
        self.not_found_code = not_found_code
        super().__init__(**kwargs)

    def get_queryset(self) -> Any:
        organization = self.context.get("organization")
        if organization is None:
            raise RuntimeError("OrgScopedPrimaryKeyRelatedField needs the tenant context")
        queryset = super().get_queryset()
        if queryset is None:
            raise RuntimeError("OrgScopedPrimaryKeyRelatedField needs a queryset")
        return queryset.filter(organization_id=organization.pk)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, bool) or not isinstance(data, str):
            self.fail("incorrect_type", data_type=type(data).__name__)
        try:
            pk = parse_uuid(data)
        except Exception:
            self.fail("incorrect_type", data_type="non-UUID string")
        obj = self.get_queryset().filter(pk=pk).first()
        if obj is None:
            model = self.get_queryset().model
            raise not_found(self.not_found_code, f"{model._meta.verbose_name} not found")
        return obj

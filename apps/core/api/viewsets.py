"""The one base viewset for tenant resources. Tenancy is enforced here and nowhere else.

Concrete viewsets declare `queryset`, `serializer_class`, optionally `filterset_class`,
`required_permissions` (action -> Perm, see apps.core.permissions) and `not_found_code`, plus
`@action`s that call services. They may not override `get_queryset` or `get_object`: the class
refuses to be subclassed that way, so a new endpoint cannot forget to scope by organization.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models
from rest_framework import mixins, status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from apps.core.api.errors import not_found
from apps.core.api.pagination import LinkHeaderCursorPagination
from apps.core.permissions import HasOrgPermission, Perm
from apps.core.tenancy import Tenant, get_tenant, parse_uuid

_SEALED = ("get_queryset", "get_object")


class OrgScopedViewSet(viewsets.GenericViewSet):
    permission_classes = [IsAuthenticated, HasOrgPermission]
    # Lists answer every row unless the client asks for `?limit=` (apps.core.api.pagination).
    pagination_class = LinkHeaderCursorPagination
    required_permissions: ClassVar[dict[str, Perm]] = {}
    # Machine code of the 404 for this resource, e.g. "server_not_found".
    not_found_code: ClassVar[str] = "not_found"
    # Any string reaches the view, so a malformed id is a 400 rather than an unmatched route.
    lookup_value_regex = "[^/]+"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in _SEALED:
            if name in cls.__dict__:
                raise TypeError(
                    f"{cls.__name__} overrides {name}; tenant viewsets must rely on "
                    "OrgScopedViewSet's scoping (declare `queryset`, or use get_parent)"
                )

    @property
    def tenant(self) -> Tenant:
        return get_tenant(self.request)

    @property
    def organization(self) -> models.Model:
        return self.tenant.organization

    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(organization_id=self.organization.pk)

    def get_object(self) -> Any:
        obj = self._find_object()
        if obj is None:
            raise not_found(self.not_found_code, f"{self._resource_name()} not found")
        return obj

    def _find_object(self) -> Any:
        """The object the URL names within the organization, or None (a malformed id is 400)."""
        lookup = self.lookup_url_kwarg or self.lookup_field
        pk = parse_uuid(self.kwargs[lookup])
        queryset = self.filter_queryset(self.get_queryset())
        obj = queryset.filter(**{self.lookup_field: pk}).first()
        if obj is not None:
            self.check_object_permissions(self.request, obj)
        return obj

    def get_parent(
        self, model: type[models.Model], kwarg: str, code: str = "not_found"
    ) -> models.Model:
        """A parent object from the URL (e.g. the cluster of /clusters/{clusterID}/runs), found
        only within the request's organization."""
        pk = parse_uuid(self.kwargs[kwarg])
        parent = model._default_manager.filter(pk=pk, organization_id=self.organization.pk).first()
        if parent is None:
            raise not_found(code, f"{model._meta.verbose_name} not found")
        return parent

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        if getattr(self, "request", None) is not None and self.request.user is not None:
            context["tenant"] = self.tenant
            context["organization"] = self.organization
        return context

    def perform_create(self, serializer: Any) -> None:
        serializer.save(organization=self.organization)

    def _resource_name(self) -> str:
        model = self.get_queryset().model
        return str(model._meta.verbose_name)


class OrgScopedModelViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    OrgScopedViewSet,
):
    """List, create, retrieve, PATCH and delete. PUT is not part of the contract.

    With `idempotent_delete`, DELETE of an absent object is 204 like a successful one, as in
    the original (a retried delete succeeds); another organization's object is absent too, so
    the answer still reveals nothing about it."""

    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    idempotent_delete: ClassVar[bool] = False

    def destroy(self, request: Any, *args: Any, **kwargs: Any) -> Response:
        if not self.idempotent_delete:
            return super().destroy(request, *args, **kwargs)
        instance = self._find_object()
        if instance is not None:
            self.perform_destroy(instance)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def perform_create(self, serializer: Any) -> None:
        # CreateModelMixin precedes the base in the MRO; new rows must still get the tenant's org.
        OrgScopedViewSet.perform_create(self, serializer)

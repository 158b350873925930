"""The base viewsets for scoped resources. Tenancy is enforced here and nowhere else.

`OrgScopedViewSet` answers an organization's rows (the request's tenant) and
`PlatformScopedModelViewSet` the platform's own (rows with no organization, for platform admins);
both share `_ScopedViewSet`: finding one object, ETag/If-Match, one transaction per write.

Concrete viewsets declare `queryset`, `serializer_class`, optionally `filterset_class`,
`required_permissions` (action -> Perm, see apps.core.permissions), `invalid_id_code` and
`not_found_code` (the original's codes for the route, docs/compatibility.md), plus `@action`s
that call services. They may not override `get_queryset` or `get_object`, themselves or through a
mixin listed ahead of the base: the class refuses to be subclassed that way, so a new endpoint
cannot forget to scope by owner.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, ClassVar, TypeVar

from django.db import models
from rest_framework import mixins, status, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from apps.core.api.errors import APIError, not_found
from apps.core.api.pagination import LinkHeaderCursorPagination
from apps.core.api.transactions import AtomicWritesMixin
from apps.core.permissions import HasOrgPermission, IsPlatformAdmin, Perm
from apps.core.tenancy import Tenant, get_tenant, parse_uuid, request_key_scope

_M = TypeVar("_M", bound=models.Model)

# How a viewset finds its objects: only the scoping bases below define these.
_SEALED = ("get_queryset", "get_object", "_find_object")
# The classes that define whose rows a request reaches (filled as they are declared).
_SCOPING_BASES: set[type] = set()
# Actions that answer one object, and so carry its ETag.
_SINGLE_OBJECT_ACTIONS = frozenset({"retrieve", "create", "partial_update", "update"})
_IF_MATCH_METHODS = frozenset({"PATCH", "DELETE"})


def object_etag(obj: Any) -> str | None:
    """A strong ETag for one row: its id and `updated_at`, which every save advances. None for
    rows without `updated_at`."""
    return _etag(getattr(obj, "pk", None), getattr(obj, "updated_at", None))


def _etag(pk: Any, updated_at: Any) -> str | None:
    if pk is None or updated_at is None:
        return None
    digest = hashlib.sha256(f"{pk}:{updated_at.isoformat()}".encode()).hexdigest()[:32]
    return f'"{digest}"'


def _if_match_tags(value: str) -> list[str]:
    return [tag.strip().removeprefix("W/") for tag in value.split(",") if tag.strip()]


class _ScopedViewSet(AtomicWritesMixin, viewsets.GenericViewSet):
    """What every scoping base shares, whoever owns the rows: finding one object (a malformed id
    is 400, an absent one 404), ETag/If-Match on it, one transaction per write, paging, and the
    seal. A scoping base (declared `scoping_base=True`, in this module only) says whose rows a
    request may reach by defining `get_queryset` and `_scope_filter`; nothing below it may change
    how objects are found, neither a subclass nor a mixin placed ahead of the base."""

    # Lists answer every row unless the client asks for `?limit=` (apps.core.api.pagination).
    pagination_class = LinkHeaderCursorPagination
    # Machine codes of the 400 for a malformed id in the path and of the 404 for an unknown one.
    # They differ per resource in the original (`id_invalid`/`server_not_found` on servers,
    # `bad_cluster_id`/`not_found` on clusters), and its clients branch on them.
    invalid_id_code: ClassVar[str] = "invalid_id"
    not_found_code: ClassVar[str] = "not_found"
    # Any string reaches the view, so a malformed id is a 400 rather than an unmatched route.
    lookup_value_regex = "[^/]+"

    def __init_subclass__(cls, scoping_base: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if scoping_base:
            if cls.__module__ != __name__:
                raise TypeError(f"{cls.__name__}: only {__name__} declares a scoping base")
            _SCOPING_BASES.add(cls)
            return
        # Everything ahead of the nearest scoping base in the MRO is the subclass's own code
        # (its class and the mixins listed before the base); none of it may define a sealed
        # name, or a mixin could unscope a route that looks like a plain subclass.
        for klass in cls.__mro__:
            if klass in _SCOPING_BASES:
                return
            for name in _SEALED:
                if name in klass.__dict__:
                    raise TypeError(
                        f"{cls.__name__}: {klass.__name__} overrides {name}; scoped viewsets "
                        "must rely on their base's scoping (declare `queryset`, or use get_parent)"
                    )

    def _scope_filter(self) -> dict[str, Any]:
        """The filter naming the rows of this request's owner (defined by each scoping base)."""
        raise NotImplementedError

    def get_object(self) -> Any:
        obj = self._find_object()
        if obj is None:
            raise not_found(self.not_found_code, f"{self._resource_name()} not found")
        return obj

    # --- optimistic concurrency: ETag / If-Match (docs/audit.md) -----------------------------

    @property
    def _if_match(self) -> str:
        """The If-Match header of a PATCH or DELETE; "" when absent or empty (the original's
        generated clients send empty headers), which keeps the unconditional behaviour."""
        request = getattr(self, "request", None)
        if request is None or request.method not in _IF_MATCH_METHODS:
            return ""
        return request.headers.get("If-Match", "").strip()

    def _check_if_match(self, obj: Any) -> None:
        tags = _if_match_tags(self._if_match)
        if not tags or "*" in tags:
            return
        if object_etag(obj) not in tags:
            raise APIError(
                412,
                "precondition_failed",
                f"If-Match: the {self._resource_name()} has changed since that ETag was issued",
            )

    def rolls_back(self, request: Any, response: Any) -> bool:
        # Besides a 5xx (AtomicWritesMixin): a conditional write checks the tag and writes under
        # one row lock (see _find_object), so two writers holding the same tag cannot both
        # succeed, and a refused one (412 or any other refusal) changes nothing.
        conditional = (
            request.method in _IF_MATCH_METHODS and request.headers.get("If-Match", "").strip()
        )
        return response.status_code >= 500 or bool(conditional and response.status_code >= 400)

    def finalize_response(self, request: Any, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        obj = getattr(self, "_etag_object", None)
        if obj is None and getattr(self, "action", None) == "create":
            obj = self._created_row(response)
        if (
            obj is not None
            and getattr(self, "action", None) in _SINGLE_OBJECT_ACTIONS
            and 200 <= response.status_code < 300
            and not response.has_header("ETag")
        ):
            tag = object_etag(obj)
            if self.action in ("partial_update", "update"):
                # Services may save a re-read copy of the row; the tag must be the stored one.
                tag = _etag(
                    obj.pk,
                    type(obj)
                    ._base_manager.filter(pk=obj.pk)
                    .values_list("updated_at", flat=True)
                    .first(),
                )
            if tag:
                response["ETag"] = tag
        return response

    def _created_row(self, response: Any) -> Any:
        """The row a service-backed `create` (one that bypasses perform_create) answered, found
        by the `id` of its 201 body, so its ETag is set like any other create's."""
        data = getattr(response, "data", None)
        if response.status_code != 201 or not isinstance(data, dict):
            return None
        model = self.get_queryset().model
        if not any(field.name == "updated_at" for field in model._meta.concrete_fields):
            return None
        try:
            pk = uuid.UUID(str(data.get("id")))
        except ValueError:
            return None
        return model._base_manager.filter(pk=pk, **self._scope_filter()).first()

    def _find_object(self) -> Any:
        """The object the URL names within the owner's rows, or None (a malformed id is 400)."""
        lookup = self.lookup_url_kwarg or self.lookup_field
        pk = parse_uuid(self.kwargs[lookup], code=self.invalid_id_code)
        queryset = self.filter_queryset(self.get_queryset())
        queryset = queryset.filter(**{self.lookup_field: pk})
        if self._if_match or self.request.method == "DELETE":
            # Under the row lock, a conditional write compares and writes at one moment, and of
            # concurrent DELETEs only the first finds the row: the others find it gone (204 or
            # 404) and record nothing, so the log holds one delete, as it happened.
            queryset = queryset.select_for_update(of=("self",))
        obj = queryset.first()
        if obj is not None:
            self.check_object_permissions(self.request, obj)
            self._check_if_match(obj)
            self._etag_object = obj
        return obj

    def _resource_name(self) -> str:
        model = self.get_queryset().model
        return str(model._meta.verbose_name)


class OrgScopedViewSet(_ScopedViewSet, scoping_base=True):
    """An organization's rows: the request's tenant (apps.core.tenancy), and for keys limited to
    clusters, only those clusters' rows."""

    permission_classes = [IsAuthenticated, HasOrgPermission]
    required_permissions: ClassVar[dict[str, Perm]] = {}
    # For keys limited to clusters (apps.core.permissions.key_scope_check): the URL argument
    # naming the route's cluster, and the field of this queryset's rows holding it, which
    # narrows lists to the key's clusters. Routes without them refuse such keys.
    cluster_kwarg: ClassVar[str | None] = None
    cluster_field: ClassVar[str | None] = None

    @property
    def tenant(self) -> Tenant:
        return get_tenant(self.request)

    @property
    def organization(self) -> Any:
        # apps.orgs.models.Organization; core imports no app, so the type stays open here, as
        # on Tenant.organization.
        return self.tenant.organization

    def _scope_filter(self) -> dict[str, Any]:
        return {"organization_id": self.organization.pk}

    def get_queryset(self) -> models.QuerySet:
        queryset = super().get_queryset().filter(**self._scope_filter())
        scope = request_key_scope(self.request)
        if scope is not None and scope.cluster_ids is not None and self.cluster_field:
            queryset = queryset.filter(**{f"{self.cluster_field}__in": scope.cluster_ids})
        return queryset

    def get_parent(self, model: type[_M], kwarg: str) -> _M:
        """A parent object from the URL (e.g. the cluster of /clusters/{clusterID}/runs), found
        only within the request's organization. Its malformed or unknown id answers this
        viewset's codes: the original's routes under a parent answer the parent's."""
        pk = parse_uuid(self.kwargs[kwarg], code=self.invalid_id_code)
        parent = model._default_manager.filter(pk=pk, organization_id=self.organization.pk).first()
        if parent is None:
            raise not_found(self.not_found_code, f"{model._meta.verbose_name} not found")
        return parent

    def get_serializer_context(self) -> dict[str, Any]:
        context = dict(super().get_serializer_context())
        if getattr(self, "request", None) is not None and self.request.user is not None:
            context["tenant"] = self.tenant
            context["organization"] = self.organization
        return context

    def perform_create(self, serializer: Any) -> None:
        serializer.save(organization=self.organization)
        self._etag_object = serializer.instance


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


class PlatformScopedModelViewSet(
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    _ScopedViewSet,
    scoping_base=True,
):
    """The platform's own rows of a model whose `organization` may be null (e.g. webhook
    endpoints of the platform): platform admins only, and only the rows with no organization,
    so an organization's rows are out of reach here as the platform's are from tenant routes.
    `organization` is None, so code shared with an `OrgScopedModelViewSet` (a mixin reading
    `self.organization`) acts for the platform. Everything else (lookup, ETag/If-Match, the
    seal) is the tenant routes' own code, in `_ScopedViewSet`."""

    permission_classes = [IsPlatformAdmin]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    organization: ClassVar[Any] = None

    def _scope_filter(self) -> dict[str, Any]:
        return {"organization__isnull": True}

    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().filter(**self._scope_filter())

    def perform_create(self, serializer: Any) -> None:
        # CreateModelMixin's would save whatever organization the body named.
        serializer.save(organization=None)
        self._etag_object = serializer.instance

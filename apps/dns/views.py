"""The DNS routes: the contract's ten (/dns/domains, /dns/records) and, beyond it, plans and
the organization's DNS settings (docs/dns.md). Views parse and answer; services decide."""

from __future__ import annotations

from typing import Any, ClassVar

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api.errors import bad_request
from apps.core.api.viewsets import OrgScopedModelViewSet, OrgScopedViewSet
from apps.core.permissions import Perm
from apps.dns import services
from apps.dns.filters import DomainFilterSet, RecordSetFilterSet
from apps.dns.models import DNSPlan, DNSSettings, Domain, RecordSet
from apps.dns.serializers import (
    DNSPlanSerializer,
    DNSSettingsSerializer,
    DomainCreateSerializer,
    DomainSerializer,
    DomainUpdateSerializer,
    RecordSetCreateSerializer,
    RecordSetSerializer,
    RecordSetUpdateSerializer,
)

_RECORD_FILTERS = [
    OpenApiParameter("name", str, description="Exact relative name or FQDN (normalized)"),
    OpenApiParameter("type", str, description="A, AAAA, CNAME, TXT, MX, NS, SRV, CAA"),
    OpenApiParameter("status", str, description="pending|provisioning|ready|failed"),
]


@extend_schema_view(
    list=extend_schema(operation_id="ListDomains"),
    retrieve=extend_schema(operation_id="GetDomain"),
    destroy=extend_schema(operation_id="DeleteDomain"),
)
class DomainViewSet(OrgScopedModelViewSet):
    """/dns/domains: domains bound to Route 53 hosted zones, their record sets, their plans."""

    queryset = Domain.objects.order_by("-created_at")
    serializer_class = DomainSerializer
    filterset_class = DomainFilterSet
    invalid_id_code = "bad_id"
    not_found_code = "not_found"

    @extend_schema(
        operation_id="CreateDomain",
        request=DomainCreateSerializer,
        responses={201: DomainSerializer},
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        payload = DomainCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        domain = services.domain_create(
            organization_id=self.organization.pk, **payload.validated_data
        )
        return Response(DomainSerializer(domain).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="UpdateDomain", request=DomainUpdateSerializer, responses=DomainSerializer
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        domain = self.get_object()
        payload = DomainUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        domain = services.domain_update(domain=domain, changes=payload.validated_data)
        return Response(DomainSerializer(domain).data)

    def perform_destroy(self, instance: Domain) -> None:
        services.domain_delete(domain=instance)

    @extend_schema(
        methods=["GET"],
        operation_id="ListRecordSets",
        parameters=_RECORD_FILTERS,
        responses=RecordSetSerializer(many=True),
    )
    @extend_schema(
        methods=["POST"],
        operation_id="CreateRecordSet",
        request=RecordSetCreateSerializer,
        responses={201: RecordSetSerializer},
    )
    @action(
        detail=True,
        methods=["get", "post"],
        url_path="records",
        filterset_class=None,
        pagination_class=None,
    )
    def records(self, request: Request, pk: str | None = None) -> Response:
        domain = self.get_object()
        if request.method == "POST":
            payload = RecordSetCreateSerializer(data=request.data)
            payload.is_valid(raise_exception=True)
            record = services.record_set_create(domain=domain, **payload.validated_data)
            return Response(RecordSetSerializer(record).data, status=status.HTTP_201_CREATED)
        filterset = RecordSetFilterSet(
            request.query_params,
            queryset=RecordSet.objects.filter(domain=domain).order_by("name", "type"),
            domain_name=domain.domain_name,
        )
        # An invalid filter (e.g. a NUL character) must not be dropped into an unfiltered list.
        if not filterset.is_valid():
            field, messages = next(iter(filterset.errors.items()))
            raise bad_request("validation_error", f"{field}: {messages[0]}")
        return Response(RecordSetSerializer(filterset.qs, many=True).data)

    @extend_schema(
        operation_id="PlanDomain",
        request=None,
        responses=DNSPlanSerializer,
        description=(
            "Beyond the contract: read the zone now and return the creates, updates and "
            "deletes the next reconcile would make, each with its ownership verdict. The plan "
            "is stored; apply it with POST /dns/plans/{id}/apply."
        ),
    )
    @action(detail=True, methods=["get"], url_path="plan", filterset_class=None)
    def plan(self, request: Request, pk: str | None = None) -> Response:
        plan = services.domain_plan_create(domain=self.get_object())
        return Response(DNSPlanSerializer(plan).data)


@extend_schema_view(
    retrieve=extend_schema(operation_id="GetRecordSet"),
    destroy=extend_schema(operation_id="DeleteRecordSet"),
)
class RecordSetViewSet(
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    OrgScopedViewSet,
):
    """/dns/records/{id}: one record set (read, PATCH, delete); lists are per domain."""

    http_method_names = ["get", "patch", "delete", "head", "options"]
    queryset = RecordSet.objects.order_by("-created_at")
    serializer_class = RecordSetSerializer
    invalid_id_code = "bad_id"
    not_found_code = "not_found"

    @extend_schema(
        operation_id="UpdateRecordSet",
        request=RecordSetUpdateSerializer,
        responses=RecordSetSerializer,
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        record = self.get_object()
        payload = RecordSetUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        record = services.record_set_update(record_set=record, changes=payload.validated_data)
        return Response(RecordSetSerializer(record).data)

    def perform_destroy(self, instance: RecordSet) -> None:
        services.record_set_delete(record_set=instance)


class DNSPlanViewSet(OrgScopedViewSet):
    """/dns/plans/{id} and /dns/plans/{id}/apply (beyond the contract)."""

    queryset = DNSPlan.objects.order_by("-created_at")
    serializer_class = DNSPlanSerializer
    not_found_code = "plan_not_found"

    @extend_schema(operation_id="GetDNSPlan", responses=DNSPlanSerializer)
    def retrieve(self, request: Request, pk: str | None = None) -> Response:
        return Response(DNSPlanSerializer(self.get_object()).data)

    @extend_schema(
        operation_id="ApplyDNSPlan",
        request=None,
        responses={202: DNSPlanSerializer},
        description=(
            "Queue the plan's changes (a dns_reconcile job). 409 plan_stale when the domain's "
            "record sets changed since the plan; the job refuses it (plan status stale) when "
            "the zone changed since."
        ),
    )
    @action(detail=True, methods=["post"], url_path="apply")
    def apply(self, request: Request, pk: str | None = None) -> Response:
        plan = services.dns_plan_apply(plan=self.get_object())
        return Response(DNSPlanSerializer(plan).data, status=status.HTTP_202_ACCEPTED)


class DNSSettingsViewSet(OrgScopedViewSet):
    """/dns/settings: the organization's DNS settings (beyond the contract). Reading is for
    every member; changing them is an organization policy, for owners and admins."""

    queryset = DNSSettings.objects.all()
    serializer_class = DNSSettingsSerializer
    required_permissions: ClassVar[dict[str, Perm]] = {"change": Perm.MANAGE_ORG}

    @extend_schema(operation_id="GetDNSSettings", responses=DNSSettingsSerializer)
    def show(self, request: Request) -> Response:
        found = services.dns_settings_get(organization_id=self.organization.pk)
        return Response(DNSSettingsSerializer(found).data)

    @extend_schema(
        operation_id="UpdateDNSSettings",
        request=DNSSettingsSerializer,
        responses=DNSSettingsSerializer,
    )
    def change(self, request: Request) -> Response:
        payload = DNSSettingsSerializer(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        if "require_plan" in payload.validated_data:
            found = services.dns_settings_update(
                organization_id=self.organization.pk,
                require_plan=payload.validated_data["require_plan"],
            )
        else:
            found = services.dns_settings_get(organization_id=self.organization.pk)
        return Response(DNSSettingsSerializer(found).data)

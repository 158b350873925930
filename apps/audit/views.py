"""Org admins read their organization's audit entries (list with filters and cursor paging,
or a JSONL export); platform admins verify the chains."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import F
from django.http import StreamingHttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.audit import services
from apps.audit.filters import AuditEntryFilterSet
from apps.audit.models import AuditEntry
from apps.audit.serializers import AuditEntrySerializer
from apps.core.api.viewsets import OrgScopedViewSet
from apps.core.permissions import IsPlatformAdmin, Perm

_EXPORT_BATCH = 1000


@extend_schema(tags=["Audit"])
class AuditEntryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """GET /audit-entries (newest first; `?limit=` pages with a `Link` header), GET
    /audit-entries/{id}, GET /audit-entries/export (JSONL, oldest first, same filters)."""

    # Newest first by time, not seq: an entry is listed (seq null) before the sealer numbers it.
    queryset = AuditEntry.objects.order_by("-occurred_at")
    serializer_class = AuditEntrySerializer
    filterset_class = AuditEntryFilterSet
    not_found_code = "audit_entry_not_found"
    required_permissions: ClassVar[dict[str, Perm]] = {
        "list": Perm.MANAGE_ORG,
        "retrieve": Perm.MANAGE_ORG,
        "export": Perm.MANAGE_ORG,
    }

    @extend_schema(responses={(200, "application/jsonl"): str})
    @action(detail=False, methods=["get"], url_path="export")
    def export(self, request: Request) -> StreamingHttpResponse:
        # Chain order, so a reader can check the links; the unsealed tail comes last.
        queryset = self.filter_queryset(self.get_queryset()).order_by(
            F("seq").asc(nulls_last=True), "occurred_at"
        )

        def lines() -> Iterator[str]:
            for entry in queryset.iterator(chunk_size=_EXPORT_BATCH):
                data = AuditEntrySerializer(entry).data
                yield json.dumps(data, cls=DjangoJSONEncoder, separators=(",", ":")) + "\n"

        response = StreamingHttpResponse(lines(), content_type="application/jsonl")
        response["Content-Disposition"] = 'attachment; filename="audit.jsonl"'
        return response


class AuditVerifyView(APIView):
    """GET /admin/audit/verify (platform admins): every chain, and its first broken link."""

    permission_classes = [IsPlatformAdmin]

    @extend_schema(tags=["Audit"], operation_id="verifyAuditChains", responses=dict)
    def get(self, request: Request) -> Response:
        reports = services.audit_verify(
            organization_id=request.query_params.get("organization_id") or None
        )
        body: dict[str, Any] = {
            "ok": all(report.ok for report in reports),
            "chains": [
                {
                    "chain": report.chain,
                    "entries": report.entries,
                    "ok": report.ok,
                    "broken": report.broken.as_dict() if report.broken else None,
                    "unsealed": report.unsealed,
                    "unsealed_since": report.unsealed_since,
                }
                for report in reports
            ],
        }
        return Response(body)

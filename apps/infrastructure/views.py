"""Routes of the infrastructure app: /ssh, /servers, /credentials, /load-balancers.

Thin: tenancy and role checks come from OrgScopedViewSet and the role table; the work is in
services. Reading a secret (private key, credential secret) needs Perm.REVEAL_SECRETS and
writes a `secret_revealed` audit line.
"""

from __future__ import annotations

import base64
import io
import zipfile
from collections.abc import Iterable
from typing import Any, ClassVar

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    PolymorphicProxySerializer,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api.errors import bad_request, forbidden
from apps.core.api.responses import no_store
from apps.core.api.viewsets import OrgScopedModelViewSet
from apps.core.permissions import Perm, request_allows
from apps.infrastructure import services
from apps.infrastructure.filters import CredentialFilterSet, ServerFilterSet, SSHKeyFilterSet
from apps.infrastructure.models import Credential, LoadBalancer, Server
from apps.infrastructure.selectors import ssh_keys_with_server_count
from apps.infrastructure.serializers import (
    CredentialCreateSerializer,
    CredentialSerializer,
    CredentialUpdateSerializer,
    LoadBalancerSerializer,
    ServerSerializer,
    SSHKeyCreateSerializer,
    SSHKeyRevealSerializer,
    SSHKeySerializer,
)
from apps.jobs.api import EventStreamNegotiation, logs_page_response, logs_stream_response
from apps.jobs.models import JobRun
from apps.jobs.selectors import LogScope
from apps.jobs.serializers import JobLogPageSerializer


class _AnyAccept(BaseContentNegotiation):
    """File downloads are not JSON; do not refuse them for the client's Accept header."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> Any:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: Any = None
    ) -> Any:
        renderer = list(renderers)[0]
        return (renderer, renderer.media_type)


def _is_true(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


class SSHKeyViewSet(OrgScopedModelViewSet):
    """/ssh: generate, list (with server_count, ?unattached=true), get (?reveal=true), delete,
    download. No PATCH in the contract."""

    queryset = ssh_keys_with_server_count()
    serializer_class = SSHKeySerializer
    filterset_class = SSHKeyFilterSet
    invalid_id_code = "invalid_ssh_key_id"
    not_found_code = "ssh_key_not_found"
    http_method_names = ["get", "post", "delete", "head", "options"]

    @extend_schema(request=SSHKeyCreateSerializer, responses={201: SSHKeySerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        payload = SSHKeyCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        key = services.ssh_key_create(
            organization=self.organization,
            name=data["name"],
            key_type=data["type"],
            bits=data["bits"],
            comment=data["comment"],
        )
        # A new key has no servers; the annotation the list carries is filled in by hand.
        key.server_count = 0  # type: ignore[attr-defined]
        return Response(SSHKeySerializer(key).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[OpenApiParameter("reveal", OpenApiTypes.BOOL)],
        # Without reveal=true the list-item shape; with it, the key and its private half.
        responses={
            200: PolymorphicProxySerializer(
                component_name="SSHKeyOrReveal",
                serializers=[SSHKeySerializer, SSHKeyRevealSerializer],
                resource_type_field_name=None,
            )
        },
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = self.get_object()
        if not _is_true(request.query_params.get("reveal")):
            return Response(SSHKeySerializer(key).data)
        self._require_reveal()
        services.secret_reveal_log(
            tenant=self.tenant, request_user=request.user, resource="ssh_key", resource_id=key.pk
        )
        return no_store(Response(SSHKeyRevealSerializer(key).data))

    def perform_destroy(self, instance: Any) -> None:
        services.ssh_key_delete(ssh_key=instance)

    @extend_schema(
        parameters=[
            OpenApiParameter("part", str, enum=["public", "private", "both"], required=True),
            OpenApiParameter("mode", str, enum=["json"]),
        ],
        # A file per part (see _ssh_download), or with mode=json a JSON object naming it.
        responses={
            (200, "text/plain"): OpenApiTypes.STR,
            (200, "application/x-pem-file"): OpenApiTypes.STR,
            (200, "application/zip"): OpenApiTypes.BINARY,
            (200, "application/json"): inline_serializer(
                name="SSHKeyDownload",
                fields={
                    "id": serializers.UUIDField(),
                    "name": serializers.CharField(),
                    "fingerprint": serializers.CharField(),
                    "public_key": serializers.CharField(required=False),
                    "private_pem": serializers.CharField(required=False),
                    "zip_base64": serializers.CharField(required=False),
                    "filenames": serializers.ListField(child=serializers.CharField()),
                },
            ),
        },
    )
    @action(detail=True, methods=["get"], content_negotiation_class=_AnyAccept)
    def download(self, request: Request, pk: str | None = None) -> Any:
        part = (request.query_params.get("part") or "").strip().lower()
        if part not in ("public", "private", "both"):
            raise bad_request("invalid_ssh_part", "part: must be public, private or both")
        mode = (request.query_params.get("mode") or "").strip().lower()
        if mode not in ("", "json"):
            raise bad_request("invalid_mode", "mode: must be json or omitted")
        key = self.get_object()
        if part != "public":
            self._require_reveal()
            services.secret_reveal_log(
                tenant=self.tenant,
                request_user=request.user,
                resource="ssh_key",
                resource_id=key.pk,
            )
        return no_store(_ssh_download(key, part=part, as_json=mode == "json"))

    def _require_reveal(self) -> None:
        if not request_allows(self.request, self.tenant.role, Perm.REVEAL_SECRETS):
            raise forbidden("forbidden", "your role in this organization may not read secrets")


def _ssh_download(key: Any, *, part: str, as_json: bool) -> Any:
    pub_name, pem_name = f"{key.pk}.pub", f"{key.pk}.pem"
    body: dict[str, Any] = {"id": str(key.pk), "name": key.name, "fingerprint": key.fingerprint}
    if part == "public":
        if as_json:
            return Response({**body, "public_key": key.public_key, "filenames": [pub_name]})
        return _attachment(key.public_key + "\n", "text/plain", pub_name)
    if part == "private":
        if as_json:
            return Response({**body, "private_pem": key.private_key, "filenames": [pem_name]})
        return _attachment(key.private_key, "application/x-pem-file", pem_name)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(pem_name, key.private_key)
        archive.writestr(pub_name, key.public_key + "\n")
    data = buffer.getvalue()
    if as_json:
        return Response(
            {
                **body,
                "zip_base64": base64.b64encode(data).decode(),
                "filenames": [f"{key.pk}.zip", pem_name, pub_name],
            }
        )
    return _attachment(data, "application/zip", f"ssh_key_{key.pk}.zip")


def _attachment(content: str | bytes, content_type: str, filename: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class ServerViewSet(OrgScopedModelViewSet):
    """/servers: CRUD, filters ?status= and ?role=, and POST /servers/{id}/reset-hostkey."""

    queryset = Server.objects.order_by("-created_at")
    serializer_class = ServerSerializer
    filterset_class = ServerFilterSet
    invalid_id_code = "id_invalid"
    not_found_code = "server_not_found"
    required_permissions: ClassVar[dict[str, Perm]] = {
        "logs": Perm.READ_LOGS,
        "logs_stream": Perm.READ_LOGS,
    }

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.server_create(
            organization=self.organization, **serializer.validated_data
        )

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = services.server_update(
            server=serializer.instance, **serializer.validated_data
        )

    def perform_destroy(self, instance: Any) -> None:
        services.server_delete(server=instance)

    def _log_scope(self) -> LogScope:
        server = self.get_object()

        def is_done() -> bool:
            return Server.objects.filter(
                pk=server.pk, status__in=[Server.Status.READY, Server.Status.FAILED]
            ).exists()

        return LogScope(
            subject_type=JobRun.SubjectType.SERVER,
            subject_id=server.pk,
            organization_id=self.organization.pk,
            is_done=is_done,
        )

    @extend_schema(
        operation_id="server_logs",
        parameters=[OpenApiParameter("after", int), OpenApiParameter("limit", int)],
        responses=JobLogPageSerializer,
    )
    @action(detail=True, methods=["get"], url_path="logs")
    def logs(self, request: Request, pk: str | None = None) -> Response:
        """The bastion bootstrap transcript, after a cursor."""
        return logs_page_response(request, self._log_scope())

    @extend_schema(
        operation_id="server_logs_stream",
        parameters=[OpenApiParameter("after", int)],
        responses={(200, "text/event-stream"): OpenApiTypes.STR},
    )
    @action(
        detail=True,
        methods=["get"],
        url_path="logs/stream",
        content_negotiation_class=EventStreamNegotiation,
    )
    def logs_stream(self, request: Request, pk: str | None = None) -> Any:
        """The same lines as Server-Sent Events, live."""
        return logs_stream_response(request, self._log_scope())

    @extend_schema(request=None, responses={200: ServerSerializer})
    @action(detail=True, methods=["post"], url_path="reset-hostkey")
    def reset_hostkey(self, request: Request, pk: str | None = None) -> Response:
        server = services.server_reset_host_key(server=self.get_object())
        return Response(ServerSerializer(server, context=self.get_serializer_context()).data)


class CredentialViewSet(OrgScopedModelViewSet):
    """/credentials: CRUD (secret write-only), PATCH rotates, POST /credentials/{id}/reveal."""

    queryset = Credential.objects.order_by("-updated_at")
    serializer_class = CredentialSerializer
    filterset_class = CredentialFilterSet
    invalid_id_code = "bad_id"
    not_found_code = "not_found"
    required_permissions: ClassVar[dict[str, Perm]] = {"reveal": Perm.REVEAL_SECRETS}

    @extend_schema(request=CredentialCreateSerializer, responses={201: CredentialSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        payload = CredentialCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        credential = services.credential_create(
            organization=self.organization, provider=data.pop("credential_provider"), **data
        )
        return Response(CredentialSerializer(credential).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=CredentialUpdateSerializer, responses={200: CredentialSerializer})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        credential = self.get_object()
        payload = CredentialUpdateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        credential = services.credential_update(credential=credential, **payload.validated_data)
        return Response(CredentialSerializer(credential).data)

    def perform_destroy(self, instance: Any) -> None:
        services.credential_delete(credential=instance)

    @extend_schema(request=None, responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["post"])
    def reveal(self, request: Request, pk: str | None = None) -> Response:
        credential = self.get_object()
        secret = services.credential_reveal(credential=credential)
        services.secret_reveal_log(
            tenant=self.tenant,
            request_user=request.user,
            resource="credential",
            resource_id=credential.pk,
        )
        return no_store(Response(secret))


class LoadBalancerViewSet(OrgScopedModelViewSet):
    """/load-balancers: records of externally created load balancers."""

    queryset = LoadBalancer.objects.order_by("-created_at")
    serializer_class = LoadBalancerSerializer
    invalid_id_code = "bad_id"
    not_found_code = "not_found"

    def perform_destroy(self, instance: Any) -> None:
        services.load_balancer_delete(load_balancer=instance)

"""API views of the clusters app: thin, tenant-scoped by OrgScopedViewSet, logic in services."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from functools import cached_property
from typing import Any, ClassVar

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.audit import events as audit_events
from apps.audit import services as audit
from apps.clusters import services
from apps.clusters.filters import (
    AnnotationFilterSet,
    ClusterFilterSet,
    LabelFilterSet,
    NodePoolFilterSet,
    TaintFilterSet,
)
from apps.clusters.models import (
    Action,
    Annotation,
    Cluster,
    ClusterMetadata,
    ClusterRun,
    Label,
    NodePool,
    Taint,
)
from apps.clusters.selectors import (
    cluster_queryset,
    cluster_secrets,
    node_pool_queryset,
    with_join_secrets,
)
from apps.clusters.serializers import (
    ActionSerializer,
    AnnotationSerializer,
    AttachBastionSerializer,
    AttachCaptainDomainSerializer,
    AttachLoadBalancerSerializer,
    AttachNodePoolSerializer,
    AttachRecordSetSerializer,
    ClusterCreateSerializer,
    ClusterMetadataSerializer,
    ClusterRunSerializer,
    ClusterSerializer,
    ClusterUpdateSerializer,
    IssuedKubeconfigSerializer,
    IssueKubeconfigSerializer,
    LabelSerializer,
    NodePoolSerializer,
    ServerSummarySerializer,
    SetKubeconfigSerializer,
    TaintSerializer,
    attach_ids_serializer,
)
from apps.core.api.errors import forbidden, not_found
from apps.core.api.pagination import list_response
from apps.core.api.responses import no_store
from apps.core.api.transactions import AtomicWritesMixin
from apps.core.api.viewsets import OrgScopedModelViewSet, OrgScopedViewSet
from apps.core.permissions import IsPlatformAdmin, Perm, request_allows
from apps.core.tenancy import (
    OrgKeyPrincipal,
    parse_uuid,
    request_key_expires_at,
    request_key_scope,
)
from apps.jobs.api import EventStreamNegotiation, logs_page_response, logs_stream_response
from apps.jobs.models import JobRun
from apps.jobs.selectors import LogScope
from apps.jobs.serializers import JobLogPageSerializer

logger = logging.getLogger(__name__)


class LabelViewSet(OrgScopedModelViewSet):
    lookup_url_kwarg = "id"
    queryset = Label.objects.all()
    serializer_class = LabelSerializer
    filterset_class = LabelFilterSet
    invalid_id_code = "id_required"
    not_found_code = "label_not_found"
    idempotent_delete = True

    def perform_destroy(self, instance: Any) -> None:
        services.label_delete(label=instance)


class AnnotationViewSet(OrgScopedModelViewSet):
    lookup_url_kwarg = "id"
    queryset = Annotation.objects.all()
    serializer_class = AnnotationSerializer
    filterset_class = AnnotationFilterSet
    invalid_id_code = "bad_request"
    not_found_code = "not_found"
    idempotent_delete = True

    def perform_destroy(self, instance: Any) -> None:
        services.annotation_delete(annotation=instance)


class TaintViewSet(OrgScopedModelViewSet):
    lookup_url_kwarg = "id"
    queryset = Taint.objects.all()
    serializer_class = TaintSerializer
    filterset_class = TaintFilterSet
    invalid_id_code = "bad_request"
    not_found_code = "not_found"
    idempotent_delete = True

    def perform_destroy(self, instance: Any) -> None:
        services.taint_delete(taint=instance)


ATTACHED_SERIALIZERS = {
    "servers": ServerSummarySerializer,
    "labels": LabelSerializer,
    "annotations": AnnotationSerializer,
    "taints": TaintSerializer,
}


class NodePoolViewSet(OrgScopedModelViewSet):
    """Node pools, and the sets of servers, labels, annotations and taints attached to them."""

    lookup_url_kwarg = "id"
    queryset = node_pool_queryset()
    serializer_class = NodePoolSerializer
    filterset_class = NodePoolFilterSet
    invalid_id_code = "id_required"
    not_found_code = "node_pool_not_found"
    idempotent_delete = True

    def _node_pool(self) -> NodePool:
        # Writes need only the row, not the prefetched sets the read queryset carries.
        return self.get_parent(NodePool, "id")

    def _attached(self, request: Request, kind: str) -> Response:
        if request.method == "GET":
            items = getattr(self.get_object(), kind).all()
            return list_response(request, items, ATTACHED_SERIALIZERS[kind], self)
        node_pool = self._node_pool()
        field = services.ATTACHABLES[kind].ids_field
        serializer = attach_ids_serializer(field)(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.node_pool_attach(
            node_pool=node_pool, kind=kind, ids=serializer.validated_data[field]
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _detach(self, kind: str, item_id: str) -> Response:
        services.node_pool_detach(node_pool=self._node_pool(), kind=kind, item_id=item_id)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        methods=["GET"],
        responses=ServerSummarySerializer(many=True),
        operation_id="node_pool_list_servers",
    )
    @extend_schema(
        methods=["POST"],
        request=attach_ids_serializer("server_ids"),
        responses={204: None},
        operation_id="node_pool_attach_servers",
    )
    @action(detail=True, methods=["get", "post"], url_path="servers")
    def servers(self, request: Request, **kwargs: str) -> Response:
        return self._attached(request, "servers")

    @extend_schema(responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"servers/(?P<serverId>[^/]+)")
    def detach_server(self, request: Request, **kwargs: str) -> Response:
        return self._detach("servers", kwargs["serverId"])

    @extend_schema(
        methods=["GET"], responses=LabelSerializer(many=True), operation_id="node_pool_list_labels"
    )
    @extend_schema(
        methods=["POST"],
        request=attach_ids_serializer("label_ids"),
        responses={204: None},
        operation_id="node_pool_attach_labels",
    )
    @action(detail=True, methods=["get", "post"], url_path="labels")
    def labels(self, request: Request, **kwargs: str) -> Response:
        return self._attached(request, "labels")

    @extend_schema(responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"labels/(?P<labelId>[^/]+)")
    def detach_label(self, request: Request, **kwargs: str) -> Response:
        return self._detach("labels", kwargs["labelId"])

    @extend_schema(
        methods=["GET"],
        responses=AnnotationSerializer(many=True),
        operation_id="node_pool_list_annotations",
    )
    @extend_schema(
        methods=["POST"],
        request=attach_ids_serializer("annotation_ids"),
        responses={204: None},
        operation_id="node_pool_attach_annotations",
    )
    @action(detail=True, methods=["get", "post"], url_path="annotations")
    def annotations(self, request: Request, **kwargs: str) -> Response:
        return self._attached(request, "annotations")

    @extend_schema(responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"annotations/(?P<annotationId>[^/]+)")
    def detach_annotation(self, request: Request, **kwargs: str) -> Response:
        return self._detach("annotations", kwargs["annotationId"])

    @extend_schema(
        methods=["GET"], responses=TaintSerializer(many=True), operation_id="node_pool_list_taints"
    )
    @extend_schema(
        methods=["POST"],
        request=attach_ids_serializer("taint_ids"),
        responses={204: None},
        operation_id="node_pool_attach_taints",
    )
    @action(detail=True, methods=["get", "post"], url_path="taints")
    def taints(self, request: Request, **kwargs: str) -> Response:
        return self._attached(request, "taints")

    @extend_schema(responses={204: None})
    @action(detail=True, methods=["delete"], url_path=r"taints/(?P<taintId>[^/]+)")
    def detach_taint(self, request: Request, **kwargs: str) -> Response:
        return self._detach("taints", kwargs["taintId"])


def kubeconfig_requester(request: Request) -> str:
    """A stable id of who asks for a short-lived kubeconfig (rate limits, the certificate):
    `user:<uuid>`, or `org-key:<key id>`."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, OrgKeyPrincipal):
        return f"org-key:{auth.key_id}"
    return f"user:{request.user.pk}"


def kubeconfig_username(request: Request) -> str:
    """Who a short-lived kubeconfig names (the certificate's CN, Kubernetes' user name): the
    person's primary e-mail, or for an org key `autoglue:org-key:<key id>`."""
    auth = getattr(request, "auth", None)
    if isinstance(auth, OrgKeyPrincipal):
        return f"autoglue:org-key:{auth.key_id}"
    return str(getattr(request.user, "primary_email", "") or f"autoglue:user:{request.user.pk}")


class ClusterViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, OrgScopedViewSet
):
    """Clusters, their attachments, kubeconfig and runs.

    For a role holding REVEAL_SECRETS (owner, admin, org key) every ClusterResponse carries the
    join token and certificate key and is `no-store`; other roles never see them. The kubeconfig
    is only in `GET /clusters/{id}?reveal=true` for such a role (logged, without the secret).
    Every write answers the freshly reloaded cluster.
    """

    queryset = cluster_queryset()
    serializer_class = ClusterSerializer
    filterset_class = ClusterFilterSet
    invalid_id_code = "bad_cluster_id"
    not_found_code = "not_found"
    lookup_url_kwarg = "clusterID"
    cluster_kwarg = "clusterID"
    cluster_field = "pk"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    # Signing a kubeconfig waits on the cluster's API for up to ~30 s: no DB transaction held.
    non_atomic_actions = frozenset({"kubeconfigs"})
    # POST on these attaches an object named in the body: refused to cluster-limited keys.
    key_scope_attach_actions = frozenset(
        {
            "captain_domain",
            "control_plane_record_set",
            "apps_load_balancer",
            "glueops_load_balancer",
            "bastion",
            "node_pools",
        }
    )
    required_permissions: ClassVar[dict[str, Perm]] = {
        "run_logs": Perm.READ_LOGS,
        "run_logs_stream": Perm.READ_LOGS,
        # Whoever may read the stored kubeconfig today may have a short-lived one.
        "kubeconfigs": Perm.REVEAL_SECRETS,
    }

    @cached_property
    def shows_join_secrets(self) -> bool:
        return request_allows(self.request, self.tenant.role, Perm.REVEAL_SECRETS)

    def _readable(self, queryset: Any) -> Any:
        return with_join_secrets(queryset) if self.shows_join_secrets else queryset

    def filter_queryset(self, queryset: Any) -> Any:
        return self._readable(super().filter_queryset(queryset))

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        if "tenant" in context and self.shows_join_secrets:
            context["join_secrets"] = True
            self._serves_secrets = True
        return context

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        if getattr(self, "_serves_secrets", False):
            no_store(response)
        return response

    def _cluster_id(self) -> uuid.UUID:
        return parse_uuid(self.kwargs["clusterID"], code=self.invalid_id_code, what="clusterID")

    def _fresh(self, cluster_id: uuid.UUID, code: int = status.HTTP_200_OK) -> Response:
        cluster = self._readable(self.get_queryset()).filter(pk=cluster_id).first()
        if cluster is None:
            raise not_found(self.not_found_code, "cluster not found")
        return Response(self.get_serializer(cluster).data, status=code)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "reveal",
                bool,
                description="Include kubeconfig, random_token and certificate_key "
                "(needs the reveal_secrets permission).",
            )
        ]
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        reveal = request.query_params.get("reveal", "").lower() in ("1", "true", "yes")
        if reveal and not request_allows(request, self.tenant.role, Perm.REVEAL_SECRETS):
            raise forbidden("forbidden", "your role in this organization cannot reveal secrets")
        cluster = self.get_object()
        if reveal:
            audit.audit_secret_read(event=audit_events.SECRET_KUBECONFIG, obj=cluster)
            logger.info(
                "cluster secrets revealed",
                extra={
                    "event": "cluster_secrets_revealed",
                    "cluster_id": str(cluster.pk),
                    "organization_id": str(cluster.organization_id),
                    "principal": str(request.user),
                },
            )
        context = self.get_serializer_context()
        if reveal:
            context["revealed_secrets"] = cluster_secrets(cluster=cluster)
        return Response(ClusterSerializer(cluster, context=context).data)

    @extend_schema(request=ClusterCreateSerializer, responses={201: ClusterSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = ClusterCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        cluster = services.cluster_create(
            organization=self.organization,
            name=data["name"],
            provider=data["cluster_provider"],
            region=data["region"],
            docker_image=data["docker_image"],
            docker_tag=data["docker_tag"],
        )
        return self._fresh(cluster.pk, code=status.HTTP_201_CREATED)

    @extend_schema(request=ClusterUpdateSerializer, responses=ClusterSerializer)
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        # Found through the base (get_object), which checks If-Match under the row lock, as
        # every other PATCH is; the service then writes that row.
        cluster = self.get_object()
        serializer = ClusterUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        services.cluster_update(
            organization=self.organization,
            cluster_id=cluster.pk,
            changes=serializer.column_changes(),
        )
        return self._fresh(cluster.pk)

    def _reference(
        self,
        request: Request,
        *,
        column: str,
        serializer_class: type,
        attach: Callable[..., None],
    ) -> Response:
        cluster_id = self._cluster_id()
        if request.method == "POST":
            serializer = serializer_class(data=request.data)
            serializer.is_valid(raise_exception=True)
            attach(
                organization=self.organization, cluster_id=cluster_id, **serializer.validated_data
            )
        else:
            services.cluster_detach(
                organization=self.organization, cluster_id=cluster_id, column=column
            )
        return self._fresh(cluster_id)

    @extend_schema(
        methods=["POST"], request=AttachCaptainDomainSerializer, responses=ClusterSerializer
    )
    @extend_schema(methods=["DELETE"], request=None, responses=ClusterSerializer)
    @action(detail=True, methods=["post", "delete"], url_path="captain-domain")
    def captain_domain(self, request: Request, **kwargs: str) -> Response:
        return self._reference(
            request,
            column="captain_domain_id",
            serializer_class=AttachCaptainDomainSerializer,
            attach=services.cluster_attach_captain_domain,
        )

    @extend_schema(methods=["POST"], request=AttachRecordSetSerializer, responses=ClusterSerializer)
    @extend_schema(methods=["DELETE"], request=None, responses=ClusterSerializer)
    @action(detail=True, methods=["post", "delete"], url_path="control-plane-record-set")
    def control_plane_record_set(self, request: Request, **kwargs: str) -> Response:
        return self._reference(
            request,
            column="control_plane_record_set_id",
            serializer_class=AttachRecordSetSerializer,
            attach=services.cluster_attach_record_set,
        )

    @extend_schema(
        methods=["POST"], request=AttachLoadBalancerSerializer, responses=ClusterSerializer
    )
    @extend_schema(methods=["DELETE"], request=None, responses=ClusterSerializer)
    @action(detail=True, methods=["post", "delete"], url_path="apps-load-balancer")
    def apps_load_balancer(self, request: Request, **kwargs: str) -> Response:
        return self._reference(
            request,
            column="apps_load_balancer_id",
            serializer_class=AttachLoadBalancerSerializer,
            attach=lambda **kw: services.cluster_attach_load_balancer(which="apps", **kw),
        )

    @extend_schema(
        methods=["POST"], request=AttachLoadBalancerSerializer, responses=ClusterSerializer
    )
    @extend_schema(methods=["DELETE"], request=None, responses=ClusterSerializer)
    @action(detail=True, methods=["post", "delete"], url_path="glueops-load-balancer")
    def glueops_load_balancer(self, request: Request, **kwargs: str) -> Response:
        return self._reference(
            request,
            column="glueops_load_balancer_id",
            serializer_class=AttachLoadBalancerSerializer,
            attach=lambda **kw: services.cluster_attach_load_balancer(which="glueops", **kw),
        )

    @extend_schema(methods=["POST"], request=AttachBastionSerializer, responses=ClusterSerializer)
    @extend_schema(methods=["DELETE"], request=None, responses=ClusterSerializer)
    @action(detail=True, methods=["post", "delete"], url_path="bastion")
    def bastion(self, request: Request, **kwargs: str) -> Response:
        return self._reference(
            request,
            column="bastion_server_id",
            serializer_class=AttachBastionSerializer,
            attach=services.cluster_attach_bastion,
        )

    @extend_schema(methods=["POST"], request=SetKubeconfigSerializer, responses=ClusterSerializer)
    @extend_schema(methods=["DELETE"], request=None, responses=ClusterSerializer)
    @action(detail=True, methods=["post", "delete"], url_path="kubeconfig")
    def kubeconfig(self, request: Request, **kwargs: str) -> Response:
        cluster_id = self._cluster_id()
        kubeconfig = ""
        if request.method == "POST":
            serializer = SetKubeconfigSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
            kubeconfig = serializer.validated_data["kubeconfig"]
        services.cluster_set_kubeconfig(
            organization=self.organization, cluster_id=cluster_id, kubeconfig=kubeconfig
        )
        return self._fresh(cluster_id)

    @extend_schema(
        operation_id="cluster_kubeconfig_issue",
        request=IssueKubeconfigSerializer,
        responses={201: IssuedKubeconfigSerializer},
    )
    @action(detail=True, methods=["post"], url_path="kubeconfigs")
    def kubeconfigs(self, request: Request, **kwargs: str) -> Response:
        """A kubeconfig that expires, signed by the cluster (docs/clusters.md)."""
        cluster = self.get_object()
        serializer = IssueKubeconfigSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        scope = request_key_scope(request)
        if scope is not None and scope.cidrs and serializer.validated_data["access"] == "admin":
            # A certificate works from any network: the key's network limit would not follow it.
            raise forbidden(
                "key_scope_forbidden",
                "access: a key limited to client networks may only ask for view access",
            )
        issued = services.cluster_kubeconfig_issue(
            not_after=request_key_expires_at(request),
            cluster=cluster,
            username=kubeconfig_username(request),
            requester=kubeconfig_requester(request),
            access=serializer.validated_data["access"],
            lifetime_seconds=serializer.validated_data["lifetime_seconds"],
        )
        response = Response(IssuedKubeconfigSerializer(issued).data, status=status.HTTP_201_CREATED)
        return no_store(response)

    @extend_schema(request=AttachNodePoolSerializer, responses=ClusterSerializer)
    @action(detail=True, methods=["post"], url_path="node-pools")
    def node_pools(self, request: Request, **kwargs: str) -> Response:
        cluster_id = self._cluster_id()
        serializer = AttachNodePoolSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.cluster_attach_node_pool(
            organization=self.organization,
            cluster_id=cluster_id,
            node_pool_id=serializer.validated_data["node_pool_id"],
        )
        return self._fresh(cluster_id)

    @extend_schema(request=None, responses=ClusterSerializer)
    @action(detail=True, methods=["delete"], url_path=r"node-pools/(?P<nodePoolID>[^/]+)")
    def detach_node_pool(self, request: Request, **kwargs: str) -> Response:
        cluster_id = self._cluster_id()
        services.cluster_detach_node_pool(
            organization=self.organization,
            cluster_id=cluster_id,
            node_pool_id=parse_uuid(
                kwargs["nodePoolID"], code="bad_nodepool_id", what="nodePoolID"
            ),
        )
        return self._fresh(cluster_id)

    @extend_schema(responses=ClusterRunSerializer(many=True), operation_id="cluster_runs_list")
    @action(detail=True, methods=["get"], url_path="runs")
    def runs(self, request: Request, **kwargs: str) -> Response:
        cluster = self.get_parent(Cluster, "clusterID")
        runs = ClusterRun.objects.for_org(self.organization).filter(cluster=cluster)
        return list_response(request, runs, ClusterRunSerializer, self)

    @extend_schema(responses=ClusterRunSerializer, operation_id="cluster_runs_get")
    @action(detail=True, methods=["get"], url_path=r"runs/(?P<runID>[^/]+)")
    def run_detail(self, request: Request, **kwargs: str) -> Response:
        cluster = self.get_parent(Cluster, "clusterID")
        run = (
            ClusterRun.objects.for_org(self.organization)
            .filter(
                cluster=cluster, pk=parse_uuid(kwargs["runID"], code="bad_run_id", what="runID")
            )
            .first()
        )
        if run is None:
            raise not_found("not_found", "cluster run not found")
        return Response(ClusterRunSerializer(run).data)

    def _run(self, kwargs: dict[str, str]) -> ClusterRun:
        cluster = self.get_parent(Cluster, "clusterID")
        run = (
            ClusterRun.objects.for_org(self.organization)
            .filter(
                cluster=cluster, pk=parse_uuid(kwargs["runID"], code="bad_run_id", what="runID")
            )
            .first()
        )
        if run is None:
            raise not_found("not_found", "cluster run not found")
        return run

    def _run_log_scope(self, kwargs: dict[str, str]) -> LogScope:
        run = self._run(kwargs)

        def is_done() -> bool:
            return (
                ClusterRun.objects.filter(pk=run.pk)
                .exclude(status__in=ClusterRun.ACTIVE_STATUSES)
                .exists()
            )

        return LogScope(
            subject_type=JobRun.SubjectType.CLUSTER_RUN,
            subject_id=run.pk,
            organization_id=self.organization.pk,
            is_done=is_done,
        )

    @extend_schema(
        operation_id="cluster_run_logs",
        parameters=[OpenApiParameter("after", int), OpenApiParameter("limit", int)],
        responses=JobLogPageSerializer,
    )
    @action(detail=True, methods=["get"], url_path=r"runs/(?P<runID>[^/]+)/logs")
    def run_logs(self, request: Request, **kwargs: str) -> Response:
        return logs_page_response(request, self._run_log_scope(kwargs))

    @extend_schema(
        operation_id="cluster_run_logs_stream",
        parameters=[OpenApiParameter("after", int)],
        responses={(200, "text/event-stream"): OpenApiTypes.STR},
    )
    @action(
        detail=True,
        methods=["get"],
        url_path=r"runs/(?P<runID>[^/]+)/logs/stream",
        content_negotiation_class=EventStreamNegotiation,
    )
    def run_logs_stream(self, request: Request, **kwargs: str) -> Any:
        return logs_stream_response(request, self._run_log_scope(kwargs))

    @extend_schema(operation_id="cluster_run_cancel", request=None, responses=ClusterRunSerializer)
    @action(detail=True, methods=["post"], url_path=r"runs/(?P<runID>[^/]+)/cancel")
    def run_cancel(self, request: Request, **kwargs: str) -> Response:
        run = services.cluster_run_cancel(run=self._run(kwargs))
        return Response(ClusterRunSerializer(run).data)

    @extend_schema(request=None, responses={201: ClusterRunSerializer})
    @action(detail=True, methods=["post"], url_path=r"actions/(?P<actionID>[^/]+)/runs")
    def run_action(self, request: Request, **kwargs: str) -> Response:
        cluster = self.get_parent(Cluster, "clusterID")
        # The catalogue is global (platform-wide), not tenant data.
        catalogue_action = Action.objects.filter(
            pk=parse_uuid(kwargs["actionID"], code="bad_action_id", what="actionID")
        ).first()
        if catalogue_action is None:
            raise not_found("action_not_found", "action not found")
        run = services.cluster_run_create(cluster=cluster, action=catalogue_action)
        return Response(ClusterRunSerializer(run).data, status=status.HTTP_201_CREATED)


class ClusterMetadataViewSet(OrgScopedModelViewSet):
    """Key/value metadata of one cluster (/clusters/{clusterID}/metadata)."""

    queryset = ClusterMetadata.objects.all()
    serializer_class = ClusterMetadataSerializer
    invalid_id_code = "bad_request"
    not_found_code = "not_found"
    idempotent_delete = True
    lookup_url_kwarg = "metadataID"
    cluster_kwarg = "clusterID"
    cluster_field = "cluster_id"

    @cached_property
    def cluster(self) -> Cluster:
        return self.get_parent(Cluster, "clusterID")

    def filter_queryset(self, queryset: Any) -> Any:
        return super().filter_queryset(queryset).filter(cluster=self.cluster)

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.cluster_metadata_create(
            cluster=self.cluster, **serializer.validated_data
        )

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = services.cluster_metadata_update(
            item=serializer.instance, **serializer.validated_data
        )


class ActionViewSet(AtomicWritesMixin, viewsets.ModelViewSet):
    """The action catalogue (/admin/actions): platform admins only."""

    permission_classes = [IsPlatformAdmin]
    queryset = Action.objects.all()
    serializer_class = ActionSerializer
    filterset_class = None
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    lookup_value_regex = "[^/]+"
    lookup_url_kwarg = "actionID"

    def get_object(self) -> Action:
        pk = parse_uuid(self.kwargs["actionID"], code="bad_action_id", what="actionID")
        obj = Action.objects.filter(pk=pk).first()
        if obj is None:
            raise not_found("not_found", "action not found")
        self.check_object_permissions(self.request, obj)
        return obj

    def perform_create(self, serializer: Any) -> None:
        serializer.instance = services.action_create(**serializer.validated_data)

    def perform_update(self, serializer: Any) -> None:
        serializer.instance = services.action_update(
            action=serializer.instance, changes=serializer.validated_data
        )

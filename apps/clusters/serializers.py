"""Wire shapes of the clusters app (autoglue-openapi.json's dto.* schemas).

Secrets: a ClusterResponse carries the join token and certificate key only for a principal
whose role may read secrets (docs/clusters.md says why), and the kubeconfig only on
`GET /clusters/{id}?reveal=true` for such a role.
`org_key`/`org_secret` are only ever filled in the bastion payload, never by the API.
"""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from rest_framework import serializers

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
from apps.core.api.serializers import FastReadMixin, GoShapeMixin, prefetched
from apps.core.validators import (
    validate_docker_image,
    validate_docker_tag,
    validate_make_target,
    validate_name,
)
from apps.dns.serializers import DomainSerializer as DomainSummarySerializer
from apps.dns.serializers import RecordSetSerializer as RecordSetSummarySerializer
from apps.infrastructure.models import LoadBalancer, Server
from apps.infrastructure.serializers import LoadBalancerSerializer, ServerSerializer


class LabelSerializer(FastReadMixin, serializers.ModelSerializer):
    organization_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = Label
        fields = ["id", "organization_id", "key", "value", "created_at", "updated_at"]
        extra_kwargs = {"value": {"required": True, "allow_blank": True}}


class AnnotationSerializer(FastReadMixin, serializers.ModelSerializer):
    organization_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = Annotation
        fields = ["id", "organization_id", "key", "value", "created_at", "updated_at"]
        extra_kwargs = {"value": {"required": True, "allow_blank": True}}


class TrimmedChoiceField(serializers.ChoiceField):
    """A choice field that, like every other text field here, ignores surrounding spaces."""

    def to_internal_value(self, data: Any) -> Any:
        return super().to_internal_value(data.strip() if isinstance(data, str) else data)


class TaintSerializer(FastReadMixin, serializers.ModelSerializer):
    organization_id = serializers.UUIDField(read_only=True)
    effect = TrimmedChoiceField(choices=Taint.Effect.choices)

    class Meta:
        model = Taint
        fields = ["id", "organization_id", "key", "value", "effect", "created_at", "updated_at"]
        extra_kwargs = {"value": {"required": True, "allow_blank": True}}


class ServerSummarySerializer(GoShapeMixin, FastReadMixin, serializers.ModelSerializer):
    """dto.ServerResponse, read-only (nested in clusters and node pools); the wire fields and
    their rendering are the servers API's own."""

    omit_if_none = ServerSerializer.omit_if_none

    organization_id = serializers.UUIDField(read_only=True)
    ssh_key_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = Server
        fields = ServerSerializer.Meta.fields
        read_only_fields = fields


class LoadBalancerSummarySerializer(GoShapeMixin, FastReadMixin, serializers.ModelSerializer):
    """dto.LoadBalancerResponse, read-only (nested in clusters); fields as the LB API's."""

    empty_if_none = LoadBalancerSerializer.empty_if_none

    organization_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = LoadBalancer
        fields = LoadBalancerSerializer.Meta.fields
        read_only_fields = fields


class NodePoolSerializer(FastReadMixin, serializers.ModelSerializer):
    """dto.NodePoolResponse; the collections are read-only (attach through the sub-routes)."""

    organization_id = serializers.UUIDField(read_only=True)
    servers = ServerSummarySerializer(many=True, read_only=True)
    labels = LabelSerializer(many=True, read_only=True)
    taints = TaintSerializer(many=True, read_only=True)
    annotations = AnnotationSerializer(many=True, read_only=True)

    class Meta:
        model = NodePool
        fields = [
            "id",
            "organization_id",
            "name",
            "role",
            "servers",
            "labels",
            "taints",
            "annotations",
            "created_at",
            "updated_at",
        ]


class ClusterSerializer(GoShapeMixin, FastReadMixin, serializers.ModelSerializer):
    """dto.ClusterResponse (read side). Absent references and `control_plane_fqdn` are omitted,
    as the original's pointers with `omitempty`. With `join_secrets` true in the context it adds
    `random_token` and `certificate_key` (load them with `selectors.with_join_secrets`); with
    `revealed_secrets` (see `selectors.cluster_secrets`) also the kubeconfig. `base_url` is the
    installation's public URL (AUTOGLUE_BASE_URL), as the original's later versions answer it."""

    base_url = serializers.SerializerMethodField()
    captain_domain = DomainSummarySerializer(read_only=True)
    control_plane_record_set = RecordSetSummarySerializer(read_only=True)
    control_plane_fqdn = serializers.SerializerMethodField()
    apps_load_balancer = LoadBalancerSummarySerializer(read_only=True)
    glueops_load_balancer = LoadBalancerSummarySerializer(read_only=True)
    bastion_server = ServerSummarySerializer(read_only=True)
    cluster_provider = serializers.CharField(source="provider", read_only=True)
    node_pools = NodePoolSerializer(many=True, read_only=True)
    metadata = serializers.SerializerMethodField()

    omit_if_none = (
        "captain_domain",
        "control_plane_record_set",
        "control_plane_fqdn",
        "apps_load_balancer",
        "glueops_load_balancer",
        "bastion_server",
    )

    class Meta:
        model = Cluster
        fields = [
            "id",
            "name",
            "base_url",
            "captain_domain",
            "control_plane_record_set",
            "control_plane_fqdn",
            "apps_load_balancer",
            "glueops_load_balancer",
            "bastion_server",
            "cluster_provider",
            "region",
            "status",
            "last_error",
            "node_pools",
            "docker_image",
            "docker_tag",
            "metadata",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_base_url(self, cluster: Cluster) -> str:
        return settings.BASE_URL

    def get_control_plane_fqdn(self, cluster: Cluster) -> str | None:
        record_set = cluster.control_plane_record_set
        return record_set.fqdn if record_set is not None else None

    def get_metadata(self, cluster: Cluster) -> dict[str, str]:
        return {item.key: item.value for item in prefetched(cluster, "metadata")}

    def to_representation(self, instance: Cluster) -> dict[str, Any]:
        data = super().to_representation(instance)
        if self.context.get("join_secrets"):
            data["random_token"] = str(instance.random_token or "")
            data["certificate_key"] = str(instance.certificate_key or "")
        revealed = self.context.get("revealed_secrets")
        if revealed is not None:
            data.update(revealed)
        return data


class ClusterCreateSerializer(serializers.Serializer):
    """dto.CreateClusterRequest."""

    name = serializers.CharField(max_length=255, validators=[validate_name])
    cluster_provider = serializers.CharField(
        max_length=255, required=False, allow_blank=True, default=""
    )
    region = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    # The image and tag a run pulls and starts (apps.core.validators); blank means not set.
    docker_image = serializers.CharField(
        max_length=512,
        required=False,
        allow_blank=True,
        default="",
        validators=[validate_docker_image],
    )
    docker_tag = serializers.CharField(
        max_length=255,
        required=False,
        allow_blank=True,
        default="",
        validators=[validate_docker_tag],
    )


class ClusterUpdateSerializer(serializers.Serializer):
    """dto.UpdateClusterRequest: only the fields sent are written."""

    name = serializers.CharField(max_length=255, required=False, validators=[validate_name])
    cluster_provider = serializers.CharField(max_length=255, required=False, allow_blank=True)
    region = serializers.CharField(max_length=255, required=False, allow_blank=True)
    docker_image = serializers.CharField(
        max_length=512, required=False, allow_blank=True, validators=[validate_docker_image]
    )
    docker_tag = serializers.CharField(
        max_length=255, required=False, allow_blank=True, validators=[validate_docker_tag]
    )

    def column_changes(self) -> dict[str, str]:
        data = dict(self.validated_data)
        if "cluster_provider" in data:
            data["provider"] = data.pop("cluster_provider")
        return data


class AttachCaptainDomainSerializer(serializers.Serializer):
    domain_id = serializers.UUIDField()


class AttachRecordSetSerializer(serializers.Serializer):
    record_set_id = serializers.UUIDField()


class AttachLoadBalancerSerializer(serializers.Serializer):
    load_balancer_id = serializers.UUIDField()


class AttachBastionSerializer(serializers.Serializer):
    server_id = serializers.UUIDField()


class AttachNodePoolSerializer(serializers.Serializer):
    node_pool_id = serializers.UUIDField()


class StrictCharField(serializers.CharField):
    """Text only: a number or boolean is a 400, not silently turned into a string."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class SetKubeconfigSerializer(serializers.Serializer):
    # Never echoed back, never logged; trimmed of nothing (YAML is whitespace-sensitive).
    kubeconfig = StrictCharField(trim_whitespace=False, max_length=1024 * 1024)


@functools.cache
def attach_ids_serializer(field: str) -> type[serializers.Serializer]:
    """`{"<field>": [id, ...]}` with a non-empty list; ids are checked by the service."""
    name = "".join(part.capitalize() for part in field.removesuffix("_ids").split("_"))
    return type(
        f"Attach{name}sRequestSerializer",
        (serializers.Serializer,),
        {
            field: serializers.ListField(
                child=serializers.CharField(allow_blank=True, max_length=64),
                allow_empty=False,
                max_length=1000,
            )
        },
    )


# Free text is bounded (issue 14): a value is configuration for the cluster tooling, not a blob
# store; every cluster response carries all of its metadata.
METADATA_VALUE_MAX_LENGTH = 16 * 1024
ACTION_DESCRIPTION_MAX_LENGTH = 4096


class ClusterMetadataSerializer(FastReadMixin, serializers.ModelSerializer):
    organization_id = serializers.UUIDField(read_only=True)
    cluster_id = serializers.UUIDField(read_only=True)
    key = serializers.CharField(max_length=255)
    value = serializers.CharField(max_length=METADATA_VALUE_MAX_LENGTH)

    class Meta:
        model = ClusterMetadata
        fields = ["id", "organization_id", "cluster_id", "key", "value", "created_at", "updated_at"]


class ActionSerializer(FastReadMixin, serializers.ModelSerializer):
    """dto.ActionResponse; on write every field is required and none may be blank."""

    # A declared field named like Field.label: the serializer metaclass moves it into `fields`,
    # which the stubs cannot see.
    label = serializers.CharField(max_length=255)  # type: ignore[assignment]
    description = serializers.CharField(max_length=ACTION_DESCRIPTION_MAX_LENGTH)
    # Put on a `make` command line by the run job (apps.core.validators).
    make_target = serializers.CharField(max_length=255, validators=[validate_make_target])

    class Meta:
        model = Action
        fields = ["id", "label", "description", "make_target", "created_at", "updated_at"]


class ClusterRunSerializer(GoShapeMixin, FastReadMixin, serializers.ModelSerializer):
    """dto.ClusterRunResponse; `action` is the make target the run executes. `finished_at` is
    omitted until the run finishes."""

    omit_if_none = ("finished_at",)

    organization_id = serializers.UUIDField(read_only=True)
    cluster_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = ClusterRun
        fields = [
            "id",
            "organization_id",
            "cluster_id",
            "action",
            "status",
            "error",
            "created_at",
            "updated_at",
            "finished_at",
        ]
        read_only_fields = fields


class IssueKubeconfigSerializer(serializers.Serializer):
    """POST /clusters/{id}/kubeconfigs (beyond the contract): a kubeconfig that expires."""

    lifetime_seconds = serializers.IntegerField(
        required=False,
        default=3600,
        min_value=600,
        help_text="Seconds until the certificate expires: at least 600 (Kubernetes' minimum), "
        "at most KUBECONFIG_MAX_LIFETIME_SECONDS.",
    )
    access = serializers.ChoiceField(
        choices=["admin", "view"],
        required=False,
        default="view",
        help_text="admin: the cluster-admin ClusterRole; view: the built-in view ClusterRole.",
    )

    def validate_lifetime_seconds(self, value: int) -> int:
        ceiling = settings.KUBECONFIG_MAX_LIFETIME_SECONDS
        if value > ceiling:
            raise serializers.ValidationError(f"must be at most {ceiling}")
        return value


class IssuedKubeconfigSerializer(serializers.Serializer):
    """The kubeconfig (YAML, shown once), who it names and when it expires."""

    kubeconfig = serializers.CharField()
    username = serializers.CharField()
    groups = serializers.ListField(child=serializers.CharField())
    access = serializers.CharField()
    expires_at = serializers.DateTimeField()

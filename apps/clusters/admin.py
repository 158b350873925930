"""Admin console pages. Secrets (kubeconfig, join token, certificate key) are never shown."""

from django.contrib import admin

from apps.clusters.models import (
    Action,
    Annotation,
    Cluster,
    ClusterMetadata,
    ClusterNodePool,
    ClusterRun,
    Label,
    NodePool,
    NodePoolAnnotation,
    NodePoolLabel,
    NodePoolServer,
    NodePoolTaint,
    Taint,
)


@admin.register(Label, Annotation)
class KeyValueAdmin(admin.ModelAdmin):
    list_display = ("key", "value", "organization", "created_at")
    search_fields = ("key", "value")
    raw_id_fields = ("organization",)


@admin.register(Taint)
class TaintAdmin(admin.ModelAdmin):
    list_display = ("key", "value", "effect", "organization", "created_at")
    list_filter = ("effect",)
    search_fields = ("key", "value")
    raw_id_fields = ("organization",)


class NodePoolServerInline(admin.TabularInline):
    model = NodePoolServer
    raw_id_fields = ("server", "organization")
    extra = 0


class NodePoolLabelInline(admin.TabularInline):
    model = NodePoolLabel
    raw_id_fields = ("label", "organization")
    extra = 0


class NodePoolAnnotationInline(admin.TabularInline):
    model = NodePoolAnnotation
    raw_id_fields = ("annotation", "organization")
    extra = 0


class NodePoolTaintInline(admin.TabularInline):
    model = NodePoolTaint
    raw_id_fields = ("taint", "organization")
    extra = 0


@admin.register(NodePool)
class NodePoolAdmin(admin.ModelAdmin):
    list_display = ("name", "role", "organization", "created_at")
    list_filter = ("role",)
    search_fields = ("name",)
    raw_id_fields = ("organization",)
    inlines = [
        NodePoolServerInline,
        NodePoolLabelInline,
        NodePoolAnnotationInline,
        NodePoolTaintInline,
    ]


class ClusterNodePoolInline(admin.TabularInline):
    model = ClusterNodePool
    raw_id_fields = ("node_pool", "organization")
    extra = 0


class ClusterMetadataInline(admin.TabularInline):
    model = ClusterMetadata
    raw_id_fields = ("organization",)
    extra = 0


@admin.register(Cluster)
class ClusterAdmin(admin.ModelAdmin):
    list_display = ("name", "organization", "provider", "region", "status", "created_at")
    list_filter = ("status", "provider")
    search_fields = ("name",)
    raw_id_fields = (
        "organization",
        "captain_domain",
        "control_plane_record_set",
        "apps_load_balancer",
        "glueops_load_balancer",
        "bastion_server",
    )
    # Join secrets and the kubeconfig never render in the console; reveal goes through the API.
    exclude = ("random_token", "certificate_key", "kubeconfig")
    inlines = [ClusterNodePoolInline, ClusterMetadataInline]


@admin.register(Action)
class ActionAdmin(admin.ModelAdmin):
    list_display = ("label", "make_target", "created_at")
    search_fields = ("label", "make_target", "description")


@admin.register(ClusterRun)
class ClusterRunAdmin(admin.ModelAdmin):
    list_display = ("action", "cluster", "organization", "status", "created_at", "finished_at")
    list_filter = ("status",)
    search_fields = ("action", "error")
    raw_id_fields = ("organization", "cluster", "action_ref")

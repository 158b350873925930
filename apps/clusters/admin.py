"""Console pages of the clusters app. Join secrets and the kubeconfig show only as "set" /
"not set" (the kubeconfig downloads through a logged, role-checked action). Every write goes
through apps.clusters.services, exactly as the API's: cluster create (which generates the join
secrets), field updates, reference attaches (with the bastion rule), node pool attachments (with
the bastion and same-organization rules), metadata, runs."""

from __future__ import annotations

from typing import Any, ClassVar, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from apps.clusters import services
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
from apps.clusters.serializers import (
    ActionSerializer,
    AnnotationSerializer,
    ClusterCreateSerializer,
    ClusterMetadataSerializer,
    ClusterUpdateSerializer,
    LabelSerializer,
    NodePoolSerializer,
    TaintSerializer,
)
from apps.console.pages import ObjectPageMixin, PageAction, cluster_page
from apps.core.api.errors import APIError
from apps.core.fields import EncryptedTextField
from apps.core.permissions import Perm
from apps.infrastructure.models import Server
from apps.orgs.console_base import (
    ORG_FILTER,
    SERVICE_ERRORS,
    APIRules,
    OrgScopedAdmin,
    OrgScopedInline,
    adopt,
    can,
    is_saved,
    record_formset_save,
    refusal_text,
    secret_state,
)


class NodePoolItemAdmin(OrgScopedAdmin):
    """Labels, annotations and taints: deleting goes through the service, which detaches the item
    from its node pools under their locks, as DELETE /labels/{id} etc. do."""

    attachable_kind: ClassVar[str]

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        services.node_pool_item_delete(kind=self.attachable_kind, item=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for item in queryset:
            services.node_pool_item_delete(kind=self.attachable_kind, item=item)


class KeyValueAdmin(NodePoolItemAdmin):
    list_display = ("key", "value", "organization", "created_at")
    list_filter = (ORG_FILTER,)
    search_fields = ("key", "value")
    list_select_related = ("organization",)


@admin.register(Label)
class LabelAdmin(KeyValueAdmin):
    attachable_kind = "labels"
    api_rules = APIRules(create=LabelSerializer)


@admin.register(Annotation)
class AnnotationAdmin(KeyValueAdmin):
    attachable_kind = "annotations"
    api_rules = APIRules(create=AnnotationSerializer)


@admin.register(Taint)
class TaintAdmin(NodePoolItemAdmin):
    attachable_kind = "taints"
    list_display = ("key", "value", "effect", "organization", "created_at")
    list_filter = ("effect", ORG_FILTER)
    search_fields = ("key", "value")
    list_select_related = ("organization",)
    api_rules = APIRules(create=TaintSerializer)


# --- Node pools ------------------------------------------------------------------------------


class NodePoolServerInline(OrgScopedInline):
    model = NodePoolServer
    autocomplete_fields = ("server",)
    verbose_name = "server"
    verbose_name_plural = "servers"
    # A bastion never joins a node pool (node_pool_attach refuses it too).
    fk_filters = {"server": ~Q(role=Server.Role.BASTION)}


class NodePoolLabelInline(OrgScopedInline):
    model = NodePoolLabel
    autocomplete_fields = ("label",)
    verbose_name = "label"
    verbose_name_plural = "labels"


class NodePoolAnnotationInline(OrgScopedInline):
    model = NodePoolAnnotation
    autocomplete_fields = ("annotation",)
    verbose_name = "annotation"
    verbose_name_plural = "annotations"


class NodePoolTaintInline(OrgScopedInline):
    model = NodePoolTaint
    autocomplete_fields = ("taint",)
    verbose_name = "taint"
    verbose_name_plural = "taints"


# Join model -> (node_pool_attach kind, the join model's field pointing at the item).
ATTACHMENTS = {
    NodePoolServer: ("servers", "server"),
    NodePoolLabel: ("labels", "label"),
    NodePoolAnnotation: ("annotations", "annotation"),
    NodePoolTaint: ("taints", "taint"),
}


def _formset_changes(formset: Any, fk: str) -> tuple[list[Any], list[Any]]:
    """(ids to detach, ids to attach) from an inline formset of join rows; what changed is
    recorded on the formset for the admin's change message."""
    detach, attach = [], []
    new, changed, removed = [], [], []
    deleted = set(map(id, formset.deleted_forms))
    for form in formset.forms:
        old = form.initial.get(fk) if is_saved(form.instance) else None
        if id(form) in deleted:
            if old:
                detach.append(old)
                removed.append(form.instance)
            continue
        if not form.has_changed() or fk not in form.cleaned_data:
            continue
        target = form.cleaned_data[fk]
        if target is None or (old and str(old) == str(target.pk)):
            continue
        if old:
            detach.append(old)
            changed.append(form.instance)
        else:
            new.append(form.instance)
        attach.append(target.pk)
    record_formset_save(formset, new=new, changed=changed, deleted=removed)
    return detach, attach


@admin.register(NodePool)
class NodePoolAdmin(OrgScopedAdmin):
    list_display = ("name", "role", "organization", "created_at")
    list_filter = ("role", ORG_FILTER)
    search_fields = ("name",)
    list_select_related = ("organization",)
    readonly_fields = ("created_at", "updated_at")
    api_rules = APIRules(create=NodePoolSerializer)
    inlines = [
        NodePoolServerInline,
        NodePoolLabelInline,
        NodePoolAnnotationInline,
        NodePoolTaintInline,
    ]

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        kind, fk = ATTACHMENTS[formset.model]
        node_pool = form.instance
        detach, attach = _formset_changes(formset, fk)
        for item_id in detach:
            services.node_pool_detach(node_pool=node_pool, kind=kind, item_id=str(item_id))
        if attach:
            try:
                services.node_pool_attach(node_pool=node_pool, kind=kind, ids=attach)
            except APIError as exc:
                noun = formset.model._meta.verbose_name_plural
                raise ValidationError(f"{noun}: {exc.message}") from None


# --- Clusters --------------------------------------------------------------------------------


class ClusterNodePoolInline(OrgScopedInline):
    model = ClusterNodePool
    autocomplete_fields = ("node_pool",)
    verbose_name = "node pool"
    verbose_name_plural = "node pools"


class ClusterMetadataInline(OrgScopedInline):
    model = ClusterMetadata
    fields = ("key", "value")
    api_rules = APIRules(create=ClusterMetadataSerializer)


class RunActionForm(forms.Form):
    # Not "action": the changelist posts the admin action's name under that key.
    catalogue_action = forms.ModelChoiceField(
        queryset=Action.objects.order_by("label"), label="Action"
    )


# Cluster reference field -> the service that attaches it (the detach is `cluster_detach`).
def _is_stored(cluster: Cluster, name: str) -> bool:
    """Whether the cluster's secret `name` is set, from its stored column (never decrypted)."""
    return not cast(EncryptedTextField, Cluster._meta.get_field(name)).is_blank(cluster)


def _stored_state(cluster: Cluster, name: str) -> str:
    return secret_state(_is_stored(cluster, name))


def _attach(name: str, cluster: Cluster, value: Any) -> None:
    kwargs: dict[str, Any] = {"organization": cluster.organization, "cluster_id": cluster.pk}
    if name == "captain_domain":
        services.cluster_attach_captain_domain(domain_id=value.pk, **kwargs)
    elif name == "control_plane_record_set":
        services.cluster_attach_record_set(record_set_id=value.pk, **kwargs)
    elif name == "apps_load_balancer":
        services.cluster_attach_load_balancer(which="apps", load_balancer_id=value.pk, **kwargs)
    elif name == "glueops_load_balancer":
        services.cluster_attach_load_balancer(which="glueops", load_balancer_id=value.pk, **kwargs)
    elif name == "bastion_server":
        services.cluster_attach_bastion(server_id=value.pk, **kwargs)


REFERENCES = (
    "captain_domain",
    "control_plane_record_set",
    "apps_load_balancer",
    "glueops_load_balancer",
    "bastion_server",
)


@admin.register(Cluster)
class ClusterAdmin(ObjectPageMixin, OrgScopedAdmin):
    list_display = (
        "name",
        "organization",
        "provider",
        "region",
        "status",
        "last_error",
        "bastion_server",
        "created_at",
    )
    list_filter = ("status", "provider", ORG_FILTER)
    search_fields = ("name", "region", "provider")
    list_select_related = ("organization", "bastion_server")
    autocomplete_fields = REFERENCES
    fk_filters = {"bastion_server": Q(role=Server.Role.BASTION)}
    # docker_image and docker_tag reach the bastion's command line: the API's validators.
    api_rules = APIRules(
        create=ClusterCreateSerializer,
        update=ClusterUpdateSerializer,
        wire_names={"provider": "cluster_provider"},
    )
    fieldsets = (
        (None, {"fields": ("organization", "name", "provider", "region")}),
        ("Image", {"fields": ("docker_image", "docker_tag")}),
        ("Attached to", {"fields": REFERENCES}),
        (
            "State",
            {
                "fields": (
                    "status",
                    "last_error",
                    "join_token_state",
                    "certificate_key_state",
                    "kubeconfig_state",
                    "created_at",
                    "updated_at",
                )
            },
        ),
    )
    readonly_fields = (
        "status",
        "last_error",
        "join_token_state",
        "certificate_key_state",
        "kubeconfig_state",
        "created_at",
        "updated_at",
    )
    inlines = [ClusterNodePoolInline, ClusterMetadataInline]
    # The short-lived kubeconfigs come first: the stored one is for automation.
    actions = [
        "download_short_lived_view",
        "download_short_lived_admin",
        "run_action",
        "download_kubeconfig",
    ]
    change_form_template = "admin/clusters/cluster/change_form.html"

    # The cluster's page: its relations, and its actions as buttons (the same services and role
    # checks as the list actions and the API).

    def object_page(self, request: HttpRequest, obj: Cluster) -> dict[str, Any]:
        return {
            **cluster_page(obj),
            "can_cancel_runs": can(request, Perm.WRITE, obj.organization_id),
            "active_run_statuses": list(ClusterRun.ACTIVE_STATUSES),
        }

    def page_actions(self, request: HttpRequest, obj: Cluster) -> list[PageAction]:
        buttons = []
        if can(request, Perm.WRITE, obj.organization_id):
            url = reverse("admin:clusters_cluster_run_action", args=[obj.pk])
            buttons.append(PageAction("Run an action", url, "run-action", post=False))
        # The role first, and the stored column's emptiness without decrypting it: a page view
        # is no reason to read the secret.
        if can(request, Perm.REVEAL_SECRETS, obj.organization_id) and _is_stored(obj, "kubeconfig"):
            # The short-lived ones first: the stored kubeconfig is for automation.
            for access in ("view", "admin"):
                url = reverse("admin:clusters_cluster_short_lived", args=[obj.pk, access])
                label = f"Download a 1-hour kubeconfig ({access})"
                buttons.append(PageAction(label, url, f"kubeconfig-1h-{access}"))
            url = reverse("admin:clusters_cluster_kubeconfig", args=[obj.pk])
            label = "Download the long-lived admin kubeconfig (for automation; logged)"
            buttons.append(PageAction(label, url, "kubeconfig"))
        return buttons

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path(
                "<uuid:object_id>/run-action/",
                view(self.run_action_view),
                name=("clusters_cluster_run_action"),
            ),
            path(
                "<uuid:object_id>/kubeconfig/",
                view(require_POST(self.kubeconfig_view)),
                name="clusters_cluster_kubeconfig",
            ),
            path(
                "<uuid:object_id>/kubeconfig/1h/<str:access>/",
                view(require_POST(self.short_lived_view)),
                name="clusters_cluster_short_lived",
            ),
            path(
                "<uuid:object_id>/runs/<uuid:run_id>/cancel/",
                view(require_POST(self.cancel_run_view)),
                name="clusters_cluster_cancel_run",
            ),
            *super().get_urls(),
        ]

    def _visible(self, request: HttpRequest, object_id: Any) -> Cluster:
        """The cluster, if the user may see it; another organization's is "not found"."""
        return get_object_or_404(self.get_queryset(request), pk=object_id)

    def run_action_view(self, request: HttpRequest, object_id: Any) -> HttpResponse:
        cluster = self._visible(request, object_id)
        self.require(request, Perm.WRITE, cluster)
        form = RunActionForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            try:
                self._start_run(request, cluster, form.cleaned_data["catalogue_action"])
            except SERVICE_ERRORS as exc:  # e.g. a run is already active: said, not a 500
                self.message_user(request, f"{cluster}: {refusal_text(exc)}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:clusters_cluster_change", args=[cluster.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Run an action on {cluster}",
            "opts": self.model._meta,
            "cluster": cluster,
            "form": form,
            "page_form": True,
        }
        return TemplateResponse(request, "admin/clusters/cluster/run_action.html", context)

    def kubeconfig_view(self, request: HttpRequest, object_id: Any) -> HttpResponse:
        cluster = self._visible(request, object_id)
        response = self._kubeconfig_response(request, cluster)
        if response is None:
            return HttpResponseRedirect(reverse("admin:clusters_cluster_change", args=[cluster.pk]))
        return response

    def short_lived_view(self, request: HttpRequest, object_id: Any, access: str) -> HttpResponse:
        cluster = self._visible(request, object_id)
        if access not in ("view", "admin"):
            raise Http404("no such access level")
        response = self._short_lived_response(request, cluster, access=access)
        if response is None:
            return HttpResponseRedirect(reverse("admin:clusters_cluster_change", args=[cluster.pk]))
        return response

    def cancel_run_view(self, request: HttpRequest, object_id: Any, run_id: Any) -> HttpResponse:
        cluster = self._visible(request, object_id)
        self.require(request, Perm.WRITE, cluster)
        run = get_object_or_404(ClusterRun, pk=run_id, cluster=cluster)
        try:
            services.cluster_run_cancel(run=run)
        except APIError as exc:
            self.message_user(request, f"{run}: {exc.message}", messages.ERROR)
        else:
            self.log_change(request, cluster, f"Canceled run {run.pk} ({run.action})")
            self.message_user(request, f"{run.action}: cancel requested")
        return HttpResponseRedirect(reverse("admin:clusters_cluster_change", args=[cluster.pk]))

    def _start_run(self, request: HttpRequest, cluster: Cluster, action: Action) -> ClusterRun:
        run = services.cluster_run_create(cluster=cluster, action=action)
        self.log_change(request, cluster, f"Started action {run.action} (run {run.pk})")
        url = _job_url(run)
        self.message_user(
            request,
            format_html(
                '{}: {} queued (run {}). <a href="{}">Follow its log</a>',
                cluster,
                run.action,
                run.pk,
                url,
            )
            if url
            else f"{cluster}: {run.action} queued (run {run.pk})",
        )
        return run

    def _kubeconfig_response(self, request: HttpRequest, cluster: Cluster) -> HttpResponse | None:
        self.require(request, Perm.REVEAL_SECRETS, cluster)
        if not cluster.kubeconfig:
            self.message_user(request, f"{cluster}: no kubeconfig is stored", messages.ERROR)
            return None
        self.log_reveal(request, cluster, "the kubeconfig (download)")
        response = HttpResponse(cluster.kubeconfig, content_type="application/yaml")
        response["Content-Disposition"] = f'attachment; filename="{cluster.name}.kubeconfig"'
        response["Cache-Control"] = "no-store"
        return response

    @admin.display(description="join token")
    def join_token_state(self, obj: Cluster) -> str:
        return _stored_state(obj, "random_token")

    @admin.display(description="certificate key")
    def certificate_key_state(self, obj: Cluster) -> str:
        return _stored_state(obj, "certificate_key")

    @admin.display(description="kubeconfig")
    def kubeconfig_state(self, obj: Cluster) -> str:
        return _stored_state(obj, "kubeconfig")

    def save_model(self, request: HttpRequest, obj: Cluster, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if change:
            plain = {n: data[n] for n in form.changed_data if n in services.UPDATABLE_COLUMNS}
            if plain:
                services.cluster_update(
                    organization=obj.organization, cluster_id=obj.pk, changes=plain
                )
            references = [n for n in REFERENCES if n in form.changed_data]
        else:
            # The service generates the join token and certificate key: never typed.
            created = services.cluster_create(
                organization=obj.organization,
                **{n: data.get(n) or "" for n in services.UPDATABLE_COLUMNS},
            )
            adopt(obj, created)
            references = [n for n in REFERENCES if data.get(n) is not None]
        for name in references:
            value = data.get(name)
            try:
                if value is None:
                    services.cluster_detach(
                        organization=obj.organization, cluster_id=obj.pk, column=f"{name}_id"
                    )
                else:
                    _attach(name, obj, value)
            except APIError as exc:
                raise ValidationError({name: exc.message}) from None
        obj.refresh_from_db()

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        cluster = form.instance
        if formset.model is ClusterNodePool:
            detach, attach = _formset_changes(formset, "node_pool")
            for pool_id in detach:
                services.cluster_detach_node_pool(
                    organization=cluster.organization, cluster_id=cluster.pk, node_pool_id=pool_id
                )
            for pool_id in attach:
                services.cluster_attach_node_pool(
                    organization=cluster.organization, cluster_id=cluster.pk, node_pool_id=pool_id
                )
            return
        # Metadata: create and update through the services (which normalise the key).
        deleted = set(map(id, formset.deleted_forms))
        removed = [row.instance for row in formset.deleted_forms if is_saved(row.instance)]
        for item in removed:
            item.delete()
        new, changed = [], []
        for row in formset.forms:
            if id(row) in deleted or not row.has_changed():
                continue
            key, value = row.cleaned_data.get("key"), row.cleaned_data.get("value")
            if is_saved(row.instance):
                changed.append(
                    services.cluster_metadata_update(item=row.instance, key=key, value=value)
                )
            else:
                new.append(
                    services.cluster_metadata_create(cluster=cluster, key=key, value=value or "")
                )
        record_formset_save(formset, new=new, changed=changed, deleted=removed)

    @admin.action(description="Run an action on the selected cluster")
    def run_action(self, request: HttpRequest, queryset: QuerySet) -> Any:
        # None unless exactly one is selected (and still there after the count).
        cluster = queryset.first() if queryset.count() == 1 else None
        if cluster is None:
            self.message_user(request, "Select exactly one cluster.", messages.ERROR)
            return None
        self.require(request, Perm.WRITE, cluster)
        form = RunActionForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            self._start_run(request, cluster, form.cleaned_data["catalogue_action"])
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": f"Run an action on {cluster}",
            "opts": self.model._meta,
            "cluster": cluster,
            "form": form,
            "queryset": queryset,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/clusters/cluster/run_action.html", context)

    @admin.action(description="Download a 1-hour kubeconfig (view)")
    def download_short_lived_view(self, request: HttpRequest, queryset: QuerySet) -> Any:
        return self._short_lived(request, queryset, access="view")

    @admin.action(description="Download a 1-hour kubeconfig (admin)")
    def download_short_lived_admin(self, request: HttpRequest, queryset: QuerySet) -> Any:
        return self._short_lived(request, queryset, access="admin")

    def _short_lived(self, request: HttpRequest, queryset: QuerySet, *, access: str) -> Any:
        """A kubeconfig naming the signed-in person, signed by the cluster, expiring in an hour
        (the same service as POST /clusters/{id}/kubeconfigs, which audits it)."""
        cluster = queryset.first() if queryset.count() == 1 else None
        if cluster is None:
            self.message_user(request, "Select exactly one cluster.", messages.ERROR)
            return None
        return self._short_lived_response(request, cluster, access=access)

    def _short_lived_response(
        self, request: HttpRequest, cluster: Cluster, *, access: str
    ) -> HttpResponse | None:
        self.require(request, Perm.REVEAL_SECRETS, cluster)
        try:
            issued = services.cluster_kubeconfig_issue(
                cluster=cluster,
                username=str(getattr(request.user, "primary_email", "") or request.user.pk),
                requester=f"user:{request.user.pk}",
                access=access,
                lifetime_seconds=3600,
            )
        except APIError as exc:
            self.message_user(request, f"{cluster}: {exc.message}", messages.ERROR)
            return None
        self.log_reveal(request, cluster, f"a 1-hour {access} kubeconfig")
        response = HttpResponse(issued.kubeconfig, content_type="application/yaml")
        name = f"{cluster.name}-{access}-1h.kubeconfig"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Download the long-lived admin kubeconfig (for automation; logged)")
    def download_kubeconfig(self, request: HttpRequest, queryset: QuerySet) -> Any:
        # None unless exactly one is selected (and still there after the count).
        cluster = queryset.first() if queryset.count() == 1 else None
        if cluster is None:
            self.message_user(request, "Select exactly one cluster.", messages.ERROR)
            return None
        return self._kubeconfig_response(request, cluster)


# --- Action catalogue and runs ---------------------------------------------------------------


def _job_url(run: ClusterRun) -> str:
    """The console page of the run's job (its live log), if the jobs console is installed."""
    if not run.job_id:
        return ""
    try:
        return reverse("admin:jobs_jobrun_change", args=[run.job_id])
    except NoReverseMatch:
        return ""


@admin.register(Action)
class ActionAdmin(OrgScopedAdmin):
    """The catalogue is global: platform admins manage it (as /admin/actions in the API)."""

    org_field = None
    platform_only = True
    list_display = ("label", "make_target", "created_at")
    search_fields = ("label", "make_target", "description")
    readonly_fields = ("created_at", "updated_at")
    # make_target reaches the bastion's command line: the API's validator.
    api_rules = APIRules(create=ActionSerializer)

    def save_model(self, request: HttpRequest, obj: Action, form: Any, change: bool) -> None:
        values = {n: form.cleaned_data[n] for n in ("label", "description", "make_target")}
        if change:
            changes = {n: v for n, v in values.items() if n in form.changed_data}
            services.action_update(action=obj, changes=changes)
        else:
            adopt(obj, services.action_create(**values))


@admin.register(ClusterRun)
class ClusterRunAdmin(OrgScopedAdmin):
    """Runs are started from a cluster ("Run an action") and only ever canceled here."""

    list_display = ("action", "cluster", "organization", "status", "error", "created_at", "log")
    list_filter = ("status", ORG_FILTER)
    search_fields = ("action", "error", "cluster__name")
    list_select_related = ("organization", "cluster")
    readonly_fields = (
        "organization",
        "cluster",
        "action_ref",
        "action",
        "status",
        "error",
        "job_id",
        "finished_at",
        "created_at",
        "updated_at",
    )
    actions = ["cancel_runs"]

    @admin.display(description="log")
    def log(self, obj: ClusterRun) -> str:
        url = _job_url(obj)
        return format_html('<a href="{}">log</a>', url) if url else ""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Nothing on a run is edited by hand; actions still need the role (checked per run).
        return False

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        if not self._allowed(request, Perm.WRITE, None):
            actions.pop("cancel_runs", None)
        return actions

    @admin.action(description="Cancel the selected runs")
    def cancel_runs(self, request: HttpRequest, queryset: QuerySet) -> None:
        for run in self.each_allowed(request, queryset, Perm.WRITE):
            try:
                services.cluster_run_cancel(run=run)
            except APIError as exc:
                self.message_user(request, f"{run}: {exc.message}", messages.ERROR)
                continue
            self.log_change(request, run, "Canceled the run")
            self.message_user(request, f"{run}: cancel requested")

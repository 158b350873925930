"""What the object pages of the console show besides their own fields: a cluster's bastion,
node pools, servers, attachments, metadata and runs; a server's bootstrap runs and the pools and
clusters it belongs to; a domain's record sets and last reconcile. A fixed number of queries per
page, whatever the number of related rows, and every related object comes with the URL of its
own console page.

Related rows are read within the object's own organization only: the services never link
objects across organizations, and a page must not show another organization's row even if a
row ever did."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from django.db.models import Model, Prefetch, QuerySet
from django.urls import NoReverseMatch, reverse

from apps.clusters.models import Cluster, ClusterRun, NodePool
from apps.dns.models import Domain
from apps.infrastructure.models import Server
from apps.jobs.models import JobRun

# How many runs an object page lists (the job list, filtered to the subject, has the rest).
RECENT_RUNS = 10


def admin_url(obj: Model | None) -> str:
    """The console page of `obj` ("" for None or a model without one)."""
    if obj is None:
        return ""
    meta = obj._meta
    try:
        return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return ""


def job_url(job_id: Any) -> str:
    """The console page of a job run (its live log)."""
    if not job_id:
        return ""
    try:
        return reverse("admin:jobs_jobrun_change", args=[job_id])
    except NoReverseMatch:
        return ""


# The console page of each kind of job subject (app_model).
_SUBJECT_PAGES: dict[str, str] = {
    JobRun.SubjectType.SERVER: "infrastructure_server",
    JobRun.SubjectType.CLUSTER_RUN: "clusters_clusterrun",
    JobRun.SubjectType.DOMAIN: "dns_domain",
}


def subject_url(job: JobRun) -> str:
    """The console page of the run's subject ("" when it has none); that page applies its own
    access rules."""
    target = _SUBJECT_PAGES.get(job.subject_type)
    if not target or not job.subject_id:
        return ""
    try:
        return reverse(f"admin:{target}_change", args=[job.subject_id])
    except NoReverseMatch:
        return ""


def subject_runs_url(subject_type: str, subject_id: Any) -> str:
    """The job list filtered to one subject's runs."""
    try:
        base = reverse("admin:jobs_jobrun_changelist")
    except NoReverseMatch:
        return ""
    return f"{base}?subject_type__exact={subject_type}&q={subject_id}"


@dataclass
class Row:
    """One related object on a page: what to call it, where its page is, its status."""

    label: str
    url: str
    status: str = ""
    detail: str = ""
    obj: Any = None
    children: list[Row] = field(default_factory=list)
    # When it happened, shown after the label in the viewer's time zone (`{% local_time %}`).
    when: Any = None


def _job_rows(jobs: list[JobRun]) -> list[Row]:
    return [
        Row(
            label=job.kind,
            when=job.queued_at,
            url=job_url(job.pk),
            status=job.status,
            detail=job.error[:200],
            obj=job,
        )
        for job in jobs
    ]


def subject_jobs(*, subject_type: str, subject_id: Any, organization_id: Any) -> list[JobRun]:
    """The subject's newest runs (one query)."""
    return list(
        JobRun.objects.filter(
            subject_type=subject_type, subject_id=subject_id, organization_id=organization_id
        ).order_by("-queued_at")[:RECENT_RUNS]
    )


def _server_row(server: Server) -> Row:
    return Row(
        label=server.hostname or str(server.pk),
        url=admin_url(server),
        status=server.status,
        detail=f"{server.role} · {server.public_ip_address or server.private_ip_address or ''}",
        obj=server,
    )


def _cluster_row(cluster: Cluster) -> Row:
    return Row(label=cluster.name, url=admin_url(cluster), status=cluster.status, obj=cluster)


def _pools_with(pools: QuerySet[NodePool], relation: str, rows: QuerySet) -> QuerySet[NodePool]:
    """The node pools by name, each with `page_items`: its `relation` rows from `rows` (one
    query for all pools)."""
    return pools.prefetch_related(Prefetch(relation, queryset=rows, to_attr="page_items")).order_by(
        "name"
    )


def _pool_rows(pools: QuerySet[NodePool], child: Callable[[Any], Row]) -> list[Row]:
    """A row per pool, its children the rows `_pools_with` prefetched onto it."""
    return [
        Row(
            label=pool.name,
            url=admin_url(pool),
            detail=pool.role,
            obj=pool,
            children=[child(item) for item in getattr(pool, "page_items", [])],
        )
        for pool in pools
    ]


def _in_org(obj: Model, name: str, org_id: Any) -> Model | None:
    """The object `obj.<name>` points at, if it belongs to organization `org_id`."""
    target_id = getattr(obj, f"{name}_id")
    if target_id is None:
        return None
    model = cast(type[Model], obj._meta.get_field(name).related_model)
    return model._default_manager.filter(pk=target_id, organization_id=org_id).first()


def cluster_page(cluster: Cluster) -> dict[str, Any]:
    """Everything a cluster's page shows around its own fields (about six queries)."""
    org_id = cluster.organization_id
    bastion = (
        Server.objects.filter(pk=cluster.bastion_server_id, organization_id=org_id).first()
        if cluster.bastion_server_id
        else None
    )
    bastion_jobs = (
        subject_jobs(
            subject_type=JobRun.SubjectType.SERVER, subject_id=bastion.pk, organization_id=org_id
        )[:1]
        if bastion
        else []
    )
    pools = _pools_with(
        NodePool.objects.filter(clusters=cluster, organization_id=org_id),
        "servers",
        Server.objects.filter(organization_id=org_id).order_by("hostname"),
    )
    # Read inside the cluster's organization like every other relation here: a row pointing at
    # another organization's object (it should not exist) shows nothing of it.
    references = tuple(
        (label, _in_org(cluster, name, org_id))
        for label, name in (
            ("captain domain", "captain_domain"),
            ("control plane record set", "control_plane_record_set"),
            ("apps load balancer", "apps_load_balancer"),
            ("glueops load balancer", "glueops_load_balancer"),
        )
    )
    runs = list(
        ClusterRun.objects.filter(cluster=cluster, organization_id=org_id).order_by("-created_at")[
            :RECENT_RUNS
        ]
    )
    return {
        "bastion": _server_row(bastion) if bastion else None,
        "bastion_last_bootstrap": _job_rows(bastion_jobs)[0] if bastion_jobs else None,
        "node_pools": _pool_rows(pools, _server_row),
        "attachments": [
            (name, Row(label=str(obj), url=admin_url(obj), obj=obj) if obj is not None else None)
            for name, obj in references
        ],
        "metadata": list(cluster.metadata.filter(organization_id=org_id).order_by("key")),
        "runs": [
            Row(
                label=run.action,
                when=run.created_at,
                url=job_url(run.job_id),
                status=run.status,
                detail=run.error[:200],
                obj=run,
            )
            for run in runs
        ],
        "runs_url": admin_url_list("clusters", "clusterrun", f"cluster__id__exact={cluster.pk}"),
    }


def admin_url_list(app_label: str, model_name: str, query: str = "") -> str:
    try:
        base = reverse(f"admin:{app_label}_{model_name}_changelist")
    except NoReverseMatch:
        return ""
    return f"{base}?{query}" if query else base


def server_page(server: Server) -> dict[str, Any]:
    """Everything a server's page shows around its own fields (about four queries)."""
    org_id = server.organization_id
    jobs = subject_jobs(
        subject_type=JobRun.SubjectType.SERVER, subject_id=server.pk, organization_id=org_id
    )
    pools = _pools_with(
        NodePool.objects.filter(servers=server, organization_id=org_id),
        "clusters",
        Cluster.objects.filter(organization_id=org_id).order_by("name"),
    )
    bastion_of = Cluster.objects.filter(bastion_server=server, organization_id=org_id).order_by(
        "name"
    )
    return {
        "runs": _job_rows(jobs),
        "runs_url": subject_runs_url(JobRun.SubjectType.SERVER, server.pk),
        "node_pools": _pool_rows(pools, _cluster_row),
        "bastion_of": [_cluster_row(c) for c in bastion_of],
    }


def domain_page(domain: Domain) -> dict[str, Any]:
    """Everything a domain's page shows around its own fields (three queries)."""
    org_id = domain.organization_id
    jobs = subject_jobs(
        subject_type=JobRun.SubjectType.DOMAIN, subject_id=domain.pk, organization_id=org_id
    )
    record_sets = domain.record_sets.filter(organization_id=org_id).order_by("name", "type")
    return {
        "record_sets": [
            Row(
                label=f"{rs.name} {rs.type}",
                url=admin_url(rs),
                status=rs.status,
                detail=", ".join(str(v) for v in rs.values or []),
                obj=rs,
            )
            for rs in record_sets
        ],
        "last_reconcile": _job_rows(jobs[:1])[0] if jobs else None,
        "runs": _job_rows(jobs),
        "runs_url": subject_runs_url(JobRun.SubjectType.DOMAIN, domain.pk),
        "clusters": [
            _cluster_row(c)
            for c in Cluster.objects.filter(captain_domain=domain, organization_id=org_id)
        ],
    }


# --- the admin side ---------------------------------------------------------------------------


@dataclass
class PageAction:
    """A button on an object's page: a POST form (or a link to a page with its own form)."""

    label: str
    url: str
    id: str
    post: bool = True
    default: bool = False


class ObjectPageMixin:
    """For an OrgScopedAdmin: its change page shows `object_page(obj)` (relations) and the
    buttons `page_actions(request, obj)`, above the form (templates/admin/console/
    object_page.html). Only for an object the user may view: the admin's own scoping."""

    change_form_template: ClassVar[str] = "admin/console/object_page.html"

    def object_page(self, request: Any, obj: Any) -> dict[str, Any]:
        return {}

    def page_actions(self, request: Any, obj: Any) -> list[PageAction]:
        return []

    def change_view(
        self,
        request: Any,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        context = dict(extra_context or {})
        obj = self.get_object(request, object_id)  # type: ignore[attr-defined]
        if obj is not None and self.has_view_permission(request, obj):  # type: ignore[attr-defined]
            context["page"] = self.object_page(request, obj) or {"object": obj}
            context["page_actions"] = self.page_actions(request, obj)
        return super().change_view(request, object_id, form_url, context)  # type: ignore[misc]

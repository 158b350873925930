"""What a person calls a job's subject: a server's hostname, a cluster run's cluster and action, a
domain's name. Resolved in the database as one annotation (`subject_name`), so a list of runs
names every subject in the same query that reads the runs, and a search can match them."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from django.db.models import Case, CharField, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Concat

from apps.clusters.models import ClusterRun
from apps.dns.models import Domain
from apps.infrastructure.models import Server
from apps.jobs.models import JobRun


def with_subject_names(queryset: QuerySet[JobRun]) -> QuerySet[JobRun]:
    """The runs, each with `subject_name` ("" for a run without a subject or one whose subject
    is gone)."""
    # Cross-org reads are harmless here: each subquery matches the run's own subject id only.
    hostname = Server.objects.filter(pk=OuterRef("subject_id")).values("hostname")[:1]
    run = ClusterRun.objects.filter(pk=OuterRef("subject_id")).values(
        label=Concat("cluster__name", Value(": "), "action", output_field=CharField())
    )[:1]
    domain = Domain.objects.filter(pk=OuterRef("subject_id")).values("domain_name")[:1]
    return queryset.annotate(
        subject_name=Case(
            When(subject_type=JobRun.SubjectType.SERVER, then=Subquery(hostname)),
            When(subject_type=JobRun.SubjectType.CLUSTER_RUN, then=Subquery(run)),
            When(subject_type=JobRun.SubjectType.DOMAIN, then=Subquery(domain)),
            default=Value(""),
            output_field=CharField(),
        )
    )


def runs_of_subjects_named(
    queryset: QuerySet[JobRun], term: str, organization_ids: Collection[Any] | None = None
) -> QuerySet[JobRun]:
    """The runs whose subject's name contains `term` (case-insensitive). The matching subjects
    are found first, in their own tables and within `organization_ids` (None: every
    organization, for platform admins); the runs are then matched by subject id, so the search
    never names the subject of every run of the list."""

    def scoped(model_queryset: QuerySet) -> QuerySet:
        if organization_ids is None:
            return model_queryset
        return model_queryset.filter(organization_id__in=organization_ids)

    servers = scoped(Server.objects.filter(hostname__icontains=term)).values("pk")
    domains = scoped(Domain.objects.filter(domain_name__icontains=term)).values("pk")
    cluster_runs = (
        scoped(ClusterRun.objects.all())
        .annotate(label=Concat("cluster__name", Value(": "), "action", output_field=CharField()))
        .filter(label__icontains=term)
        .values("pk")
    )
    return queryset.filter(
        Q(subject_type=JobRun.SubjectType.SERVER, subject_id__in=servers)
        | Q(subject_type=JobRun.SubjectType.CLUSTER_RUN, subject_id__in=cluster_runs)
        | Q(subject_type=JobRun.SubjectType.DOMAIN, subject_id__in=domains)
    )

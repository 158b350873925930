"""An object's history page: the audit log's entries about it, each actor and related run
linked to its console page."""

from __future__ import annotations

from typing import Any

from django.db.models import Model

from apps.audit.selectors import HISTORY_LIMIT, HistoryEntry, object_history
from apps.clusters.models import ClusterMetadata, ClusterNodePool, NodePoolServer
from apps.console.pages import job_url

# Rows that point at an object and belong in its history: (row model, column naming the object).
RELATED_ROWS: dict[str, tuple[tuple[type[Model], str], ...]] = {
    "clusters.cluster": ((ClusterNodePool, "cluster"), (ClusterMetadata, "cluster")),
    "infrastructure.server": ((NodePoolServer, "server"),),
}


def object_history_entries(obj: Model) -> list[HistoryEntry]:
    """The entries about `obj` in its organization, newest first, with `job_url` set on those
    launched for it or written by a job; for clusters and servers also those of the rows that
    attach pools, servers and metadata to them (`RELATED_ROWS`)."""
    organization_id: Any = getattr(obj, "organization_id", None)
    if obj._meta.label_lower == "orgs.organization":
        organization_id = obj.pk
    label = obj._meta.label_lower
    related = [
        (
            child._meta.label_lower,
            f"{column}_id",
            list(
                child._default_manager.filter(
                    **{column: obj.pk, "organization_id": organization_id}
                ).values_list("pk", flat=True)[:HISTORY_LIMIT]
            ),
        )
        for child, column in RELATED_ROWS.get(label, ())
    ]
    entries = object_history(
        object_type=label, object_id=obj.pk, organization_id=organization_id, related=related
    )
    for entry in entries:
        job_id = ""
        if entry.object_type == "jobs.jobrun":
            job_id = entry.object_id
        elif entry.actor_type == "job":
            job_id = entry.actor_id
        entry.job_url = job_url(job_id)
    return entries

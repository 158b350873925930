"""An object's history page: the audit log's entries about it, each actor and related run
linked to its console page."""

from __future__ import annotations

from typing import Any

from django.db.models import Model

from apps.audit.selectors import HistoryEntry, object_history
from apps.console.pages import job_url


def object_history_entries(obj: Model) -> list[HistoryEntry]:
    """The entries about `obj` in its organization, newest first, with `job_url` set on those
    launched for it or written by a job."""
    organization_id: Any = getattr(obj, "organization_id", None)
    if obj._meta.label_lower == "orgs.organization":
        organization_id = obj.pk
    entries = object_history(
        object_type=obj._meta.label_lower, object_id=obj.pk, organization_id=organization_id
    )
    for entry in entries:
        job_id = ""
        if entry.object_type == "jobs.jobrun":
            job_id = entry.object_id
        elif entry.actor_type == "job":
            job_id = entry.actor_id
        entry.job_url = job_url(job_id)
    return entries

"""The console's one search box: a term looked up across every kind of object an operator
names (servers by hostname or address, clusters, node pools, domains, record sets, load
balancers, SSH keys, credentials, API keys in any pasted form, organizations, job runs).

Each kind is searched through its own console page: the page's queryset (who sees which
organization's rows, apps.orgs.console_base) and the page's own search, so the box finds exactly
what the lists would, and never another organization's object.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.apps import apps
from django.contrib.admin import AdminSite, ModelAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse

from apps.accounts import tokens
from apps.jobs.models import JobRun
from apps.jobs.subjects import runs_of_subjects_named

# The kinds searched, in the order their results are listed.
SEARCHED = (
    "infrastructure.Server",
    "clusters.Cluster",
    "clusters.NodePool",
    "dns.Domain",
    "dns.RecordSet",
    "infrastructure.LoadBalancer",
    "infrastructure.SSHKey",
    "infrastructure.Credential",
    "accounts.APIKey",
    "orgs.Organization",
    "jobs.JobRun",
)
# Rows listed per kind; the kind's "all" link leads to its list searched by the same term.
# Beyond PER_KIND the kind says "10+" instead of counting: one search is a dozen list searches,
# and a COUNT over a large table per keystroke-sized term is the expensive part.
PER_KIND = 10
MAX_TERM_LENGTH = 200
# One character matches nearly every row of every kind (ILIKE '%a%'): not worth the scans.
MIN_TERM_LENGTH = 2


@dataclass
class Hit:
    """One object found: what a person calls it, its status (if it has one), its page."""

    label: str
    url: str
    status: str = ""


@dataclass
class KindResult:
    name: str
    count: int  # at most PER_KIND; `more` says there are others
    more: bool
    list_url: str
    hits: list[Hit] = field(default_factory=list)


def search_term(raw: str) -> str:
    """The term searched for what was typed or pasted: a pasted API key is searched by its
    public id alone, so its secret never reaches a query."""
    term = raw.strip()[:MAX_TERM_LENGTH]
    public_id = tokens.public_id_from_pasted(term)
    if public_id is not None:
        return public_id
    return term if len(term) >= MIN_TERM_LENGTH else ""


def _job_runs(
    model_admin: ModelAdmin, request: HttpRequest, queryset: QuerySet, term: str
) -> tuple[QuerySet, bool]:
    """Job runs are the largest table: the box finds them by a run's or subject's id (the list's
    own search) or by their subject's name, never by a scan of every run's kind and error text
    (the job list's search box still does that)."""
    try:
        uuid.UUID(term)
    except ValueError:
        return runs_of_subjects_named(queryset, term), False
    return model_admin.get_search_results(request, queryset, term)


def _url(model_admin: ModelAdmin, view: str, *args: Any) -> str:
    opts = model_admin.opts
    try:
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)
    except NoReverseMatch:
        return ""


def search(*, request: HttpRequest, site: AdminSite, term: str) -> list[KindResult]:
    """Every kind with at least one match for `term` that the request's user may see."""
    results = []
    for label in SEARCHED:
        model = apps.get_model(label)
        model_admin = site._registry.get(model)
        if model_admin is None or not model_admin.has_view_permission(request):
            continue
        queryset = model_admin.get_queryset(request)
        if model is JobRun:
            queryset, may_have_duplicates = _job_runs(model_admin, request, queryset, term)
        else:
            queryset, may_have_duplicates = model_admin.get_search_results(request, queryset, term)
        if may_have_duplicates:
            queryset = queryset.distinct()
        rows = list(queryset[: PER_KIND + 1])
        if not rows:
            continue
        list_url = _url(model_admin, "changelist")
        results.append(
            KindResult(
                name=str(model._meta.verbose_name_plural),
                count=min(len(rows), PER_KIND),
                more=len(rows) > PER_KIND,
                list_url=f"{list_url}?{urlencode({'q': term})}" if list_url else "",
                hits=[
                    Hit(
                        label=str(obj),
                        url=_url(model_admin, "change", obj.pk),
                        status=str(getattr(obj, "status", "") or ""),
                    )
                    for obj in rows[:PER_KIND]
                ],
            )
        )
    return results

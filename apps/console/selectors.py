"""What the console's dashboard shows, in a handful of queries.

Each figure carries the changelist URL that lists the same rows, so a number on the dashboard
is one click from the objects behind it. Staff who are not platform admins see only the
organizations they belong to (the console's rule everywhere, apps.orgs.console_base).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.apps import apps
from django.conf import settings
from django.db.models import Count, Model, Q, QuerySet
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from apps.accounts.models import APIKey, SigningKey
from apps.clusters.models import Cluster
from apps.console.pages import subject_url
from apps.dns.models import RecordSet
from apps.infrastructure.models import Server
from apps.jobs.models import JobRun
from apps.jobs.subjects import with_subject_names

# How many runs the dashboard lists by name under "running" and "failing".
_LISTED_RUNS = 5
# A run that failed this long ago is history, not a current failure.
_FAILING_WINDOW = timedelta(hours=24)


@dataclass
class Figure:
    """One number on the dashboard and the changelist that lists its rows ("" if that model has
    no page in the console)."""

    label: str
    count: int
    url: str = ""
    level: str = ""  # "", "warning" or "error": how the card draws attention


@dataclass
class Dashboard:
    clusters: list[Figure] = field(default_factory=list)
    servers: list[Figure] = field(default_factory=list)
    running_jobs: Figure | None = None
    failing_jobs: Figure | None = None
    running_runs: list[JobRun] = field(default_factory=list)
    failing_runs: list[JobRun] = field(default_factory=list)
    dns: list[Figure] = field(default_factory=list)
    expiring: list[Figure] = field(default_factory=list)
    last_backup: Any = None
    backups_enabled: bool = False
    backups_url: str = ""


def changelist_url(model: type[Model], **params: Any) -> str:
    """The console's changelist of `model`, filtered by `params`; "" when it has none."""
    meta = model._meta
    try:
        url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
    except NoReverseMatch:
        return ""
    return f"{url}?{urlencode(params)}" if params else url


def _scoped(queryset: QuerySet, org_ids: list[Any] | None) -> QuerySet:
    return queryset if org_ids is None else queryset.filter(organization_id__in=org_ids)


def _by_status(model: type, org_ids: list[Any] | None) -> list[Figure]:
    rows = (
        _scoped(model.objects.all(), org_ids)  # type: ignore[attr-defined]
        .order_by()
        .values_list("status")
        .annotate(n=Count("pk"))
    )
    counts = dict(rows)
    figures = []
    for value, label in model.Status.choices:  # type: ignore[attr-defined]
        if value in counts:
            level = "error" if value == "failed" else ""
            figures.append(
                Figure(label, counts[value], changelist_url(model, status__exact=value), level)
            )
    return figures


def _last_backup() -> tuple[bool, Any, str]:
    """The newest backup, if the maintenance app (and its Backup model) is installed. Backups
    are the platform's: the dashboard shows them to platform admins only."""
    try:
        backup_model = apps.get_model("maintenance", "Backup")
    except LookupError:
        return False, None, ""
    ordering = backup_model._meta.ordering or ["-pk"]  # the model's own "newest first"
    latest = backup_model.objects.order_by(*ordering).first()
    return True, latest, changelist_url(backup_model)


def dashboard(*, org_ids: list[Any] | None) -> Dashboard:
    """The dashboard's figures over the organizations `org_ids` (None: every organization and
    the platform's own rows, for platform admins)."""
    now = timezone.now()
    board = Dashboard()
    board.clusters = _by_status(Cluster, org_ids)
    board.servers = _by_status(Server, org_ids)

    # Each listed run names its subject (hostname, cluster, domain) in the same query.
    runs = with_subject_names(_scoped(JobRun.objects.all(), org_ids))
    failing_since = now - _FAILING_WINDOW
    counts = runs.aggregate(
        running=Count("pk", filter=Q(status__in=JobRun.ACTIVE_STATUSES)),
        failing=Count("pk", filter=Q(status=JobRun.Status.FAILED, finished_at__gte=failing_since)),
    )
    board.running_jobs = Figure(
        "running or queued",
        counts["running"],
        changelist_url(JobRun, status__in="queued,running,retrying"),
    )
    board.failing_jobs = Figure(
        "failed in the last 24 hours",
        counts["failing"],
        changelist_url(JobRun, status__exact="failed", finished_at__gte=failing_since.isoformat()),
        "error" if counts["failing"] else "",
    )
    related = ["organization"]
    if counts["running"]:
        board.running_runs = list(
            runs.filter(status__in=JobRun.ACTIVE_STATUSES)
            .select_related(*related)
            .order_by("-queued_at")[:_LISTED_RUNS]
        )
    if counts["failing"]:
        board.failing_runs = list(
            runs.filter(status=JobRun.Status.FAILED, finished_at__gte=failing_since)
            .select_related(*related)
            .order_by("-finished_at")[:_LISTED_RUNS]
        )

    for run in [*board.running_runs, *board.failing_runs]:
        run.subject_url = subject_url(run)  # type: ignore[attr-defined]

    dns = _scoped(RecordSet.objects.all(), org_ids).aggregate(
        failed=Count("pk", filter=Q(status=RecordSet.Status.FAILED)),
        external=Count("pk", filter=Q(owner=RecordSet.Owner.EXTERNAL)),
    )
    board.dns = [
        Figure(
            "record sets failed",
            dns["failed"],
            changelist_url(RecordSet, status__exact="failed"),
            "error" if dns["failed"] else "",
        ),
        Figure(
            "record sets owned by someone else",
            dns["external"],
            changelist_url(RecordSet, owner__exact="external"),
            "warning" if dns["external"] else "",
        ),
    ]

    soon = now + timedelta(days=settings.CONSOLE_EXPIRY_WARNING_DAYS)
    window = {"expires_at__gte": now.isoformat(), "expires_at__lte": soon.isoformat()}
    # Ephemeral automation keys (a cluster action's 24-hour org key) expire by design.
    expiring_keys = (
        _scoped(APIKey.objects.all(), org_ids)
        .filter(
            revoked_at__isnull=True,
            purpose__in=["user", "org"],
            expires_at__gte=now,
            expires_at__lte=soon,
        )
        .count()
    )
    board.expiring.append(
        Figure(
            "API and org keys",
            expiring_keys,
            changelist_url(APIKey, revoked_at__isnull="True", purpose__in="user,org", **window),
            "warning" if expiring_keys else "",
        )
    )
    if org_ids is None:  # signing keys are the platform's, not an organization's
        expiring_signing = SigningKey.objects.filter(
            is_active=True, expires_at__gte=now, expires_at__lte=soon
        ).count()
        board.expiring.append(
            Figure(
                "JWT signing keys",
                expiring_signing,
                changelist_url(SigningKey, is_active__exact="1", **window),
                "warning" if expiring_signing else "",
            )
        )

    if org_ids is None:
        installed, board.last_backup, board.backups_url = _last_backup()
        # "Back up now" is offered only when a backup can actually start.
        board.backups_enabled = installed and bool(getattr(settings, "BACKUP_ENABLED", False))
    return board

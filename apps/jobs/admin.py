"""Job runs in the console: the list (status, kind, subject, duration), retry and cancel through
apps.jobs.services, and a live log viewer fed by the jobs' SSE stream (apps.jobs.stream)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from apps.console.pages import subject_url
from apps.core.console_admin import choices_filter, recent_filter
from apps.core.permissions import Perm
from apps.jobs import registry, services
from apps.jobs.models import JobRun
from apps.jobs.selectors import LogScope, job_transcript_lines
from apps.jobs.stream import sse_response
from apps.jobs.subjects import runs_of_subjects_named, with_subject_names
from apps.orgs.console_base import OrgScopedAdmin, can, is_platform_admin, orgs_allowing
from apps.orgs.tenancy import principal_still_allowed


class KindFilter(admin.SimpleListFilter):
    """The registered kinds (a free-text column in the table)."""

    title = "kind"
    parameter_name = "kind"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in sorted(registry.names())]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(kind=self.value()) if self.value() else queryset


def _duration(job: JobRun) -> str:
    if job.started_at is None:
        return ""
    seconds = ((job.finished_at or timezone.now()) - job.started_at).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def _iso(moment: Any) -> str:
    return moment.isoformat().replace("+00:00", "Z") if moment else ""


# The job page keeps at most this many lines in the browser (the newest); the download has all.
LOG_LINE_CAP = 20_000


def _shown(job: JobRun, name: str) -> str:
    """A time of the run as its page's `<time>` element says it before localtime.js rewrites
    it (UTC), for the status poll to draw the same element (joblog.js)."""
    moment = getattr(job, name)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


@admin.register(JobRun)
class JobRunAdmin(OrgScopedAdmin):
    """Read-only runs; operators act on them with retry and cancel (logged as admin entries).
    Members see their organizations' runs (the console's org-scoped base); platform jobs, with
    no organization, and retry/cancel are for platform admins, as on /admin/archer."""

    list_display = [
        "kind",
        "status",
        "organization",
        "subject",
        "queued_at",
        "duration",
        "attempts",
        "short_error",
    ]
    # Fixed choices and a bounded time window: runs grow without bound, and Django's
    # all-values filters and date hierarchy would read the whole table on every view.
    list_filter = [
        "status",
        recent_filter("queued_at", "queued"),
        KindFilter,
        "subject_type",
        choices_filter("queue", "queue", registry.queues),
    ]
    list_select_related = ["organization"]
    search_fields = ["kind", "error"]
    search_help_text = (
        "Kind or error text, a subject's name (hostname, cluster, domain), or a run's or "
        "subject's id."
    )
    actions = ["retry_selected", "cancel_selected"]
    change_form_template = "admin/jobs/jobrun/change_form.html"
    readonly_fields = [
        "id",
        "kind",
        "status",
        "organization",
        "subject",
        "subject_type",
        "subject_id",
        "queue",
        "attempts",
        "max_attempts",
        "queued_at",
        "started_at",
        "finished_at",
        "duration",
        "heartbeat_at",
        "cancel_requested",
        "worker",
        "error",
        "payload",
        "result",
    ]
    fields = tuple(readonly_fields)

    @admin.display(description="subject")
    def subject(self, job: JobRun) -> str:
        if not job.subject_id:
            return "—"
        # `subject_name` comes from the list's own query (get_queryset): no query per row.
        name = getattr(job, "subject_name", "") or ""
        label = f"{job.subject_type} {name}" if name else f"{job.subject_type} {job.subject_id}"
        url = subject_url(job)
        return format_html('<a href="{}">{}</a>', url, label) if url else label

    @admin.display(description="duration")
    def duration(self, job: JobRun) -> str:
        return _duration(job)

    @admin.display(description="error")
    def short_error(self, job: JobRun) -> str:
        return job.error[:80]

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return with_subject_names(super().get_queryset(request))

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        term = search_term.strip()
        try:
            value = uuid.UUID(term)
        except ValueError:
            found, duplicates = super().get_search_results(request, queryset, search_term)
            if not term:
                return found, duplicates
            orgs = None if is_platform_admin(request) else orgs_allowing(request, self.view_perm)
            return found | runs_of_subjects_named(queryset, term, orgs), duplicates
        return queryset.filter(pk=value) | queryset.filter(subject_id=value), False

    # Runs are written by services only; operators retry or cancel them.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        # As on the API's /admin/archer routes: platform admins only.
        return is_platform_admin(request)

    def _transition(self, request: HttpRequest, job: JobRun, verb: str) -> bool:
        action = services.job_retry if verb == "retry" else services.job_request_cancel
        try:
            action(job=job)
        except services.JobStateError as exc:
            self.message_user(request, f"{job.kind} {job.pk}: {exc}", messages.ERROR)
            return False
        self.log_change(request, job, f"{verb} requested from the console")
        return True

    @admin.action(description="Retry selected failed or canceled runs", permissions=["operate"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        done = sum(self._transition(request, job, "retry") for job in queryset)
        if done:
            self.message_user(request, f"{done} run(s) queued again.", messages.SUCCESS)

    @admin.action(description="Cancel selected runs", permissions=["operate"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        done = sum(self._transition(request, job, "cancel") for job in queryset)
        if done:
            self.message_user(
                request, f"{done} run(s) canceled or asked to stop.", messages.SUCCESS
            )

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path(
                "<uuid:job_id>/log/stream/",
                view(self.log_stream_view),
                name="jobs_jobrun_log_stream",
            ),
            path(
                "<uuid:job_id>/log/download/",
                view(self.log_download_view),
                name="jobs_jobrun_log_download",
            ),
            path(
                "<uuid:job_id>/status/",
                view(self.status_view),
                name="jobs_jobrun_status",
            ),
            *(
                path(
                    f"<uuid:job_id>/{verb}/",
                    view(require_POST(self.transition_view)),
                    {"verb": verb},
                    name=f"jobs_jobrun_{verb}",
                )
                for verb in ("retry", "cancel")
            ),
            *super().get_urls(),
        ]

    def _visible_job(self, request: HttpRequest, job_id: uuid.UUID) -> JobRun:
        job = self.get_queryset(request).filter(pk=job_id).first()
        if job is None or not self.has_view_permission(request, job):
            raise Http404("job run not found")
        return job

    def transition_view(self, request: HttpRequest, job_id: uuid.UUID, verb: str) -> HttpResponse:
        if verb not in ("retry", "cancel") or not self.has_operate_permission(request):
            raise Http404("no such action")
        job = self._visible_job(request, job_id)
        if self._transition(request, job, verb):
            self.message_user(request, f"{verb.capitalize()} requested.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:jobs_jobrun_change", args=[job.pk]))

    def _readable_log(self, request: HttpRequest, job_id: uuid.UUID) -> JobRun:
        """The run, if the user may read its log (docs/console-permissions.md), as on the API."""
        job = self._visible_job(request, job_id)
        if not can(request, Perm.READ_LOGS, job.organization_id):
            raise PermissionDenied("your role in this organization does not allow reading logs")
        return job

    def log_download_view(self, request: HttpRequest, job_id: uuid.UUID) -> StreamingHttpResponse:
        """The run's log as a text file: each line with its time, offset and stream, streamed as
        it is read (a log may be far larger than a worker should hold in memory)."""
        job = self._readable_log(request, job_id)
        response = StreamingHttpResponse(job_transcript_lines(job=job), content_type="text/plain")
        name = f"{job.kind}-{job.pk}.log"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        # A transcript may hold what only some roles may read: never kept by a cache.
        response["Cache-Control"] = "no-store"
        return response

    def status_view(self, request: HttpRequest, job_id: uuid.UUID) -> JsonResponse:
        """What the run's page shows in its header, for the page to follow the run to its end
        without a reload: status, times, error and which buttons apply now."""
        job = self._visible_job(request, job_id)
        active = job.status in JobRun.ACTIVE_STATUSES
        return JsonResponse(
            {
                "status": job.status,
                "active": active,
                "started_at": _iso(job.started_at),
                "finished_at": _iso(job.finished_at),
                "started_at_text": _shown(job, "started_at"),
                "finished_at_text": _shown(job, "finished_at"),
                "duration": _duration(job),
                "error": job.error,
                "can_cancel": active and self.has_operate_permission(request),
                "can_retry": job.status in (JobRun.Status.FAILED, JobRun.Status.CANCELED)
                and self.has_operate_permission(request),
            },
            headers={"Cache-Control": "no-store"},
        )

    def log_stream_view(self, request: HttpRequest, job_id: uuid.UUID) -> HttpResponseBase:
        """The run's own lines as Server-Sent Events: backlog, live lines, then `end`. Only for
        roles that may read job logs (docs/console-permissions.md), as on the API."""
        job = self._readable_log(request, job_id)
        after = request.GET.get("after", "")
        cursor = int(after) if re.fullmatch(r"[0-9]{1,18}", after) else 0

        def is_done() -> bool:
            return not JobRun.objects.filter(pk=job.pk, status__in=JobRun.ACTIVE_STATUSES).exists()

        user_id, organization_id = request.user.pk, job.organization_id

        def still_allowed() -> bool:
            return principal_still_allowed(
                organization_id=organization_id,
                perm=Perm.READ_LOGS,
                user_id=user_id,
                platform_admin=True,
            )

        scope = LogScope(
            subject_type=job.subject_type,
            subject_id=job.subject_id,
            organization_id=organization_id,
            is_done=is_done,
            job_id=job.pk,
            still_allowed=still_allowed,
        )
        return sse_response(request, scope=scope, after=cursor)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = dict(extra_context or {})
        job = self.get_object(request, object_id)
        if job is not None:
            may_read_log = can(request, Perm.READ_LOGS, job.organization_id)
            context.update(
                log_stream_url=(
                    reverse("admin:jobs_jobrun_log_stream", args=[job.pk]) if may_read_log else ""
                ),
                log_download_url=(
                    reverse("admin:jobs_jobrun_log_download", args=[job.pk]) if may_read_log else ""
                ),
                status_url=reverse("admin:jobs_jobrun_status", args=[job.pk]),
                job=job,
                job_duration=_duration(job),
                subject_link=self.subject(job),
                job_started_at=_iso(job.started_at),
                job_finished_at=_iso(job.finished_at),
                log_line_cap=LOG_LINE_CAP,
                can_operate=self.has_operate_permission(request),
                can_retry=job.status in (JobRun.Status.FAILED, JobRun.Status.CANCELED),
                can_cancel=job.status in JobRun.ACTIVE_STATUSES,
                title=f"{job.kind} run ({job.status})",
            )
        return super().change_view(request, object_id, form_url, context)

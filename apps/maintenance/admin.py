"""Backups in the admin: read-only records (they describe objects in the bucket), and "Back up
now" for platform admins, which queues the scheduled backup job and opens its live log."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from apps.core.api.errors import APIError
from apps.core.console_admin import ConsoleAdmin
from apps.maintenance import services
from apps.maintenance.models import Backup
from apps.orgs.console_base import badged_list_display


@admin.register(Backup)
class BackupAdmin(ConsoleAdmin):
    list_display = ("object_key", "status", "size_bytes", "duration_seconds", "started_at")
    list_filter = ("status",)
    search_fields = ("object_key", "sha256")
    readonly_fields = [f.name for f in Backup._meta.fields]

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

    def get_urls(self) -> list[Any]:
        now = path(
            "backup-now/",
            self.admin_site.admin_view(require_POST(self.backup_now_view)),
            name="maintenance_backup_now",
        )
        return [now, *super().get_urls()]

    def get_list_display(self, request: HttpRequest) -> Any:
        # Status as a badge and moments in the viewer's zone, as on the org-scoped lists.
        return badged_list_display(self.model, super().get_list_display(request))

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        context = {
            **(extra_context or {}),
            "can_back_up": request.user.is_superuser and settings.BACKUP_ENABLED,
        }
        return super().changelist_view(request, context)

    def backup_now_view(self, request: HttpRequest) -> HttpResponse:
        """Queue a backup now (platform admins) and follow its run's log."""
        if not request.user.is_superuser:
            raise PermissionDenied
        try:
            job = services.backup_start_now()
        except APIError as exc:
            self.message_user(request, f"No backup started: {exc.message}", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:maintenance_backup_changelist"))
        self.message_user(request, f"Backup queued (job {job.pk}); its log follows it live.")
        return HttpResponseRedirect(reverse("admin:jobs_jobrun_change", args=[job.pk]))

"""The console's view of the audit log: read-only. Entries are written by the application and
never edited, so the admin offers no add, change or delete."""

from django.contrib import admin

from apps.audit.models import AuditEntry
from apps.core.console_admin import ConsoleAdmin
from apps.orgs.console_base import badged_list_display


@admin.register(AuditEntry)
class AuditEntryAdmin(ConsoleAdmin):
    """Browse and search every chain's entries."""

    list_display = [
        "occurred_at",
        "chain",
        "seq",
        "event",
        "actor_type",
        "actor_label",
        "object_type",
        "object_repr",
        "ip",
    ]
    list_filter = ["event", "actor_type", "object_type"]
    search_fields = [
        "=id",
        "=organization_id",
        "=object_id",
        "=actor_id",
        "=request_id",
        "object_repr",
    ]
    date_hierarchy = "occurred_at"
    ordering = ["-occurred_at"]
    readonly_fields = [field.name for field in AuditEntry._meta.fields]

    def get_list_display(self, request):  # type: ignore[no-untyped-def]
        # Moments in the viewer's zone (static/console/localtime.js), as on the other lists.
        return badged_list_display(self.model, super().get_list_display(request))

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

"""The console's view of the audit log: read-only. Entries are written by the application and
never edited, so the admin offers no add, change or delete."""

from django.apps import apps
from django.contrib import admin

from apps.audit.events import EVENT_TYPES
from apps.audit.models import AuditEntry
from apps.core.console_admin import ConsoleAdmin, choices_filter, recent_filter
from apps.orgs.console_base import badged_list_display


def _object_types() -> list[str]:
    """What `object_type` holds: the label of one of the application's models."""
    return [model._meta.label_lower for model in apps.get_models()]


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
    # Fixed choices and a bounded time window: the table grows without bound, and Django's
    # all-values filters and date hierarchy would read all of it on every view.
    list_filter = [
        recent_filter("occurred_at", "occurred"),
        choices_filter("event", "event", lambda: EVENT_TYPES),
        "actor_type",
        choices_filter("object_type", "object type", _object_types),
    ]
    search_fields = [
        "=id",
        "=organization_id",
        "=object_id",
        "=actor_id",
        "=request_id",
        "object_repr",
    ]
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

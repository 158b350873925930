"""Admin for the secrets-at-rest keys: read-only, and the wrapped key itself is never shown."""

from django.contrib import admin

from apps.core.console_admin import ConsoleAdmin
from apps.core.models import DataKey


@admin.register(DataKey)
class DataKeyAdmin(ConsoleAdmin):
    """Which master key wraps which organization's data key versions. Keys are created and
    rotated by `manage.py encrypt` only, so nothing here is editable."""

    list_display = ["id", "organization", "version", "master_key_id", "created_at", "updated_at"]
    list_filter = ["master_key_id"]
    search_fields = ["id", "organization__name", "organization__id"]
    list_select_related = ["organization"]
    exclude = ["wrapped_key"]
    readonly_fields = ["id", "organization", "version", "master_key_id", "created_at", "updated_at"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # Deleting a data key destroys every secret it encrypts; `encrypt prune` does it safely.
        return False

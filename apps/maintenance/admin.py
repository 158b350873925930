"""Backups in the admin: read-only records (they describe objects in the bucket)."""

from django.contrib import admin

from apps.maintenance.models import Backup


@admin.register(Backup)
class BackupAdmin(admin.ModelAdmin):
    list_display = ("object_key", "status", "size_bytes", "duration_seconds", "started_at")
    list_filter = ("status",)
    search_fields = ("object_key", "sha256")
    readonly_fields = [f.name for f in Backup._meta.fields]

    def has_add_permission(self, request) -> bool:  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False

from django.apps import AppConfig


class GroupSyncConfig(AppConfig):
    """Google Workspace groups that decide organization roles (docs/identity.md)."""

    name = "apps.groupsync"
    label = "groupsync"
    verbose_name = "Workspace groups"
    default_auto_field = "django.db.models.BigAutoField"

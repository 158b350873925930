"""Installs the console as Django admin's default site, so every `@admin.register` lands on it."""

from django.contrib.admin.apps import AdminConfig


class ConsoleAdminConfig(AdminConfig):
    """Replaces 'django.contrib.admin' in INSTALLED_APPS."""

    default_site = "apps.console.site.ConsoleAdminSite"

    def ready(self) -> None:
        super().ready()
        from apps.console.history import object_history_entries
        from apps.orgs import console_base

        # Object history pages read the audit log through the console (see console_base).
        if object_history_entries not in console_base.HISTORY_SOURCE:
            console_base.HISTORY_SOURCE.append(object_history_entries)

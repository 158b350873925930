"""Installs the console as Django admin's default site, so every `@admin.register` lands on it."""

from django.contrib.admin.apps import AdminConfig


class ConsoleAdminConfig(AdminConfig):
    """Replaces 'django.contrib.admin' in INSTALLED_APPS."""

    default_site = "apps.console.site.ConsoleAdminSite"

from django.apps import AppConfig


class DnsConfig(AppConfig):
    """DNS domains bound to Route 53 hosted zones, their record sets, and the reconciler."""

    name = "apps.dns"
    label = "dns"
    default_auto_field = "django.db.models.BigAutoField"

from django.apps import AppConfig


class InfrastructureConfig(AppConfig):
    """SSH keys, servers, cloud credentials and load balancers of an organization."""

    name = "apps.infrastructure"
    label = "infrastructure"
    default_auto_field = "django.db.models.BigAutoField"

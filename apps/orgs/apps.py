from django.apps import AppConfig


class OrgsConfig(AppConfig):
    """Organizations (the tenants) and who belongs to them with which role."""

    name = "apps.orgs"
    label = "orgs"
    default_auto_field = "django.db.models.BigAutoField"

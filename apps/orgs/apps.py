from django.apps import AppConfig


class OrgsConfig(AppConfig):
    """Organizations (the tenants) and who belongs to them with which role."""

    name = "apps.orgs"
    label = "orgs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.core.tenancy import register_resolver
        from apps.orgs.tenancy import tenant_resolve

        register_resolver(tenant_resolve)

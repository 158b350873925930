from django.apps import AppConfig


class CoreConfig(AppConfig):
    """What every app shares: base models, the API conventions, middleware, logging."""

    name = "apps.core"
    label = "core"
    default_auto_field = "django.db.models.BigAutoField"

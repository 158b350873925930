from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """People: users, their e-mails, sign-in identities, API keys and tokens."""

    name = "apps.accounts"
    label = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the OpenAPI description of the authentication class.
        from apps.accounts import schema  # noqa: F401

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """People: users, their e-mails, sign-in identities, API keys and tokens."""

    name = "apps.accounts"
    label = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

"""`manage.py create_api_key --email EMAIL [--name N] [--expires-in-hours H]`: print a new user
API key (and nothing else) once, so scripts can drive a fresh installation."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from apps.accounts import services
from apps.accounts.models import User


class Command(BaseCommand):
    help = "Create a user API key and print it once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--email", required=True)
        parser.add_argument("--name", default="cli")
        parser.add_argument("--expires-in-hours", type=int, default=None)

    def handle(self, *args, **options) -> None:
        user = User.objects.filter(primary_email__iexact=options["email"].strip()).first()
        if user is None:
            raise CommandError(f"no user with e-mail {options['email']}")
        if user.is_disabled:
            raise CommandError("that user is disabled")
        created = services.api_key_create_for_user(
            user=user, name=options["name"], expires_in_hours=options["expires_in_hours"]
        )
        self.stdout.write(created.plain)

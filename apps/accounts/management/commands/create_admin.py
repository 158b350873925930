"""`manage.py create_admin --email EMAIL [--password-stdin]`: create or promote a platform admin.

Admins normally sign in with SSO. `--password-stdin` reads a break-glass password for the admin
console from standard input (never from the command line, where it would land in shell history).
"""

from __future__ import annotations

import sys

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.accounts import services


class Command(BaseCommand):
    help = "Create a platform admin, or promote an existing user to one."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--email", required=True)
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="read a break-glass console password from stdin",
        )

    def handle(self, *args, **options) -> None:
        password = None
        if options["password_stdin"]:
            password = sys.stdin.readline().rstrip("\n")
            try:
                validate_password(password)
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages)) from None
        user, created = services.user_get_or_create_admin(email=options["email"], password=password)
        verb = "created" if created else "promoted"
        self.stdout.write(f"{verb} platform admin {user.primary_email} ({user.pk})")

"""`manage.py create_admin --email EMAIL [--password-stdin]`: create or promote a platform admin.

Admins normally sign in with SSO. `--password-stdin` reads a break-glass password for the admin
console from standard input (never from the command line, where it would land in shell history):
the first line of a pipe or file, or, in a terminal, a prompt that does not echo (asked twice).
`--if-no-admin` does nothing once any platform admin exists, so a start script (the compose
stack's setup step) can run it on every start without resetting a password or re-enabling an
admin someone disabled.
"""

from __future__ import annotations

import getpass
import sys

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.accounts import services
from apps.accounts.models import User


class Command(BaseCommand):
    help = "Create a platform admin, or promote an existing user to one."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--email", required=True)
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="read a break-glass console password from stdin",
        )
        parser.add_argument(
            "--if-no-admin",
            action="store_true",
            help="do nothing if a platform admin already exists (first start)",
        )

    def handle(self, *args, **options) -> None:
        if options["if_no_admin"] and User.objects.filter(is_admin=True).exists():
            self.stdout.write("a platform admin exists; nothing to do")
            return
        password = None
        if options["password_stdin"]:
            password = self._read_password()
            try:
                validate_password(password)
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages)) from None
        user, created = services.user_get_or_create_admin(email=options["email"], password=password)
        verb = "created" if created else "promoted"
        self.stdout.write(f"{verb} platform admin {user.primary_email} ({user.pk})")

    def _read_password(self) -> str:
        if not sys.stdin.isatty():
            return sys.stdin.readline().rstrip("\r\n")
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password (again): ") != password:
            raise CommandError("The passwords do not match.")
        return password

"""`manage.py create_admin --email EMAIL [--password-stdin]`: create or promote a platform admin.

Admins normally sign in with SSO. `--password-stdin` reads a break-glass password for the admin
console from standard input (never from the command line, where it would land in shell history):
the first line of a pipe or file, or, in a terminal, a prompt that does not echo (asked twice).
`--if-no-admin` does nothing once any platform admin exists, so a start script (the compose
stack's setup step) can run it on every start without resetting a password or re-enabling an
admin someone disabled.

`--org NAME` also gives the admin an organization of that name to own (created unless the admin
already belongs to one so named): every tenant route needs an organization, and a fresh
installation has none.
"""

from __future__ import annotations

import getpass
import sys

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.accounts import services
from apps.accounts.models import User
from apps.orgs import services as org_services
from apps.orgs.models import Membership
from apps.orgs.serializers import OrgWriteSerializer


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
        parser.add_argument(
            "--org",
            metavar="NAME",
            help="also create an organization of this name, owned by the admin",
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
        if options["org"] is not None:
            self._ensure_org(user, options["org"])

    def _ensure_org(self, user: User, name: str) -> None:
        # The API's own validation, so the command cannot make an organization the API refuses.
        form = OrgWriteSerializer(data={"name": name})
        if not form.is_valid():
            raise CommandError(f"--org: {'; '.join(str(e) for e in form.errors['name'])}")
        name = form.validated_data["name"]
        existing = Membership.objects.filter(user=user, organization__name=name).first()
        if existing is not None:
            self.stdout.write(f"{user.primary_email} already belongs to organization {name}")
            return
        org = org_services.organization_create(creator=user, name=name)
        self.stdout.write(
            f"created organization {org.name} ({org.pk}), owned by {user.primary_email}; "
            f"API clients send its id as X-Org-ID"
        )

    def _read_password(self) -> str:
        if not sys.stdin.isatty():
            return sys.stdin.readline().rstrip("\r\n")
        password = getpass.getpass("Password: ")
        if getpass.getpass("Password (again): ") != password:
            raise CommandError("The passwords do not match.")
        return password

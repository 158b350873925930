"""`manage.py keys generate [--bits N]`: create and activate a new JWT signing key.
`manage.py keys ensure`: create one only if none is active (safe to run from every process at
start; processes racing create exactly one).
`manage.py keys list`: show the keys (never their private part)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from apps.accounts import jwt, services
from apps.accounts.models import SigningKey


class Command(BaseCommand):
    help = (
        "Manage JWT signing keys: generate (creates and activates a new RS256 key), ensure "
        "(creates one only if none is active) or list."
    )

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        generate = sub.add_parser("generate", help="create and activate an RS256 signing key")
        generate.add_argument("--bits", type=int, default=3072, choices=[2048, 3072, 4096])
        sub.add_parser("ensure", help="create a signing key if none is active")
        sub.add_parser("list", help="list signing keys")

    def handle(self, *args, **options) -> None:
        if options["action"] == "generate":
            key = services.signing_key_generate(bits=options["bits"])
            self.stdout.write(f"generated {key.alg} key kid={key.kid}")
            return
        if options["action"] == "ensure":
            created = jwt.ensure_signing_key()
            signer = jwt.active_keys()[0]
            verb = "generated" if created else "found active"
            self.stdout.write(f"{verb} {signer.alg} key kid={signer.kid}")
            return
        for key in SigningKey.objects.order_by("-created_at"):
            state = "active" if key.is_active else "inactive"
            self.stdout.write(f"{key.kid}\t{key.alg}\t{state}\texpires={key.expires_at}")

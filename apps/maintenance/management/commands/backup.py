"""`manage.py backup`: back up the database now, with progress lines, and apply retention."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.maintenance import services


class Command(BaseCommand):
    help = "Back up the database to the backup bucket now (encrypted, streamed), then prune."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--no-prune", action="store_true", help="Skip retention after the backup."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        def progress(line: str) -> None:
            self.stderr.write(line)

        try:
            backup = services.backup_create(progress=progress)
            if not options["no_prune"]:
                services.backup_prune(progress=progress)
        except services.BackupError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(backup.object_key)

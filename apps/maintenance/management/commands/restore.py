"""`manage.py restore`: list the backups in the bucket, or restore one into an empty database.

The object is read to the end and every chunk authenticated, and its SHA-256 compared with
the manifest, before pg_restore starts; pg_restore then runs in one transaction.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.maintenance import services
from apps.maintenance.postgres import PostgresToolError, Target


class Command(BaseCommand):
    help = "List backups (no arguments), or restore one into an empty database."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("object_key", nargs="?", help="The backup to restore (from the list).")
        parser.add_argument(
            "--target",
            help="PostgreSQL URL of the database to restore into (it must exist and be empty). "
            "Prefer a URL without a password and PGPASSWORD in the environment.",
        )
        parser.add_argument(
            "--allow-nonempty",
            action="store_true",
            help="Restore into a database that has tables: the backup's objects are dropped and "
            "recreated (others are left as they are).",
        )
        parser.add_argument(
            "--verify-only", action="store_true", help="Verify the backup, restore nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if not options["object_key"]:
                self._list()
                return
            if options["verify_only"]:
                verified = services.backup_verify(
                    object_key=options["object_key"], progress=self.stderr.write
                )
                self.stdout.write(f"ok {verified.object_key} sha256 {verified.sha256}")
                return
            if not options["target"]:
                raise CommandError("--target is required to restore (a PostgreSQL URL)")
            target = Target.from_url(options["target"])
            restored = services.backup_restore(
                object_key=options["object_key"],
                target=target,
                allow_nonempty=options["allow_nonempty"],
                progress=self.stderr.write,
            )
        except (services.BackupError, PostgresToolError) as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"restored {options['object_key']} into {target.name}")
        for note in restored.notes:
            self.stdout.write(note)

    def _list(self) -> None:
        backups = services.backups_list()
        if not backups:
            self.stdout.write("no backups")
            return
        for info in backups:
            state = "complete" if info.complete else "INCOMPLETE"
            when = info.last_modified.strftime("%Y-%m-%d %H:%M") if info.last_modified else "?"
            self.stdout.write(
                f"{info.object_key}  {when} UTC  {info.size} bytes  {state}  "
                f"key {info.key_id or '?'}  sha256 {info.sha256[:16] or '-'}"
            )

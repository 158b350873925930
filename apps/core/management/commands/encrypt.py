"""`manage.py encrypt`: master keys, data keys and their rotation.

    encrypt create-master [--id ID] [--file PATH]   print (or append to a file) a new master key
    encrypt status                                  keys, what wraps what, what is left to do
    encrypt rotate-master [--batch-size N]          re-wrap all data keys with the active master key
    encrypt rotate-org ORG_ID|platform [--background] [--batch-size N]
                                                    new data key version + re-encrypt its secrets
    encrypt prune ORG_ID|platform                   delete old data key versions nothing uses

Master keys live outside the database (AUTOGLUE_MASTER_KEYS / AUTOGLUE_MASTER_KEYS_FILE); this
command never stores one there. The full procedure is in docs/secrets.md.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Any

from django.apps import apps as django_apps
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from apps.core.crypto.master import (
    KEY_ID_RE,
    format_entry,
    generate_master_key,
    new_key_id,
)


class Command(BaseCommand):
    help = "Manage the keys that encrypt secrets at rest (see docs/secrets.md)."

    def add_arguments(self, parser: Any) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create-master", help="Print a new master key entry.")
        create.add_argument("--id", dest="key_id", default="", help="Key id (default: random).")
        create.add_argument(
            "--file", default="", help="Append the entry to this file (mode 0600) instead."
        )
        sub.add_parser("status", help="Show master/data keys and pending rotation work.")
        master = sub.add_parser(
            "rotate-master", help="Re-wrap every data key with the active master key."
        )
        master.add_argument("--batch-size", type=int, default=None)
        org = sub.add_parser("rotate-org", help="Rotate one organization's data key.")
        org.add_argument("organization", help="Organization id, or 'platform'.")
        org.add_argument("--batch-size", type=int, default=None)
        org.add_argument(
            "--background", action="store_true", help="Queue it as a Celery task and return."
        )
        prune = sub.add_parser("prune", help="Delete old data key versions no secret uses.")
        prune.add_argument("organization", help="Organization id, or 'platform'.")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"].replace("-", "_")
        getattr(self, f"_{action}")(**options)

    # --- Subcommands --------------------------------------------------------------------------

    def _create_master(self, *, key_id: str, file: str, **_: Any) -> None:
        key_id = key_id or new_key_id()
        if not KEY_ID_RE.match(key_id):
            raise CommandError("--id: letters, digits, '.', '_' or '-', at most 64.")
        entry = format_entry(key_id, generate_master_key())
        if not file:
            self.stdout.write(entry)
            self.stderr.write(
                f"Add this entry to AUTOGLUE_MASTER_KEYS on every process, then set "
                f"AUTOGLUE_ACTIVE_MASTER_KEY={key_id} and run `manage.py encrypt rotate-master`."
            )
            return
        path = Path(file)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a") as handle:
            handle.write(entry + "\n")
        self.stdout.write(f"Appended master key {key_id} to {path}.")

    def _status(self, **_: Any) -> None:
        from apps.core.crypto.keys import master_keys
        from apps.core.crypto.rotation import encrypted_fields
        from apps.core.models import DataKey

        ring = master_keys()
        self.stdout.write(f"Active master key: {ring.active_id}")
        self.stdout.write(f"Configured master keys: {', '.join(sorted(ring.keys))}")
        by_master = dict(
            DataKey.objects.values_list("master_key_id").annotate(n=Count("id")).order_by()
        )
        for master_id, count in sorted(by_master.items()):
            note = "" if master_id in ring.keys else "  <-- NOT CONFIGURED: these cannot be read"
            self.stdout.write(f"  data keys wrapped by {master_id}: {count}{note}")
        stale = sum(n for m, n in by_master.items() if m != ring.active_id)
        self.stdout.write(
            f"Data keys to re-wrap (rotate-master): {stale}"
            + ("" if stale else " -- master keys other than the active one can be retired")
        )
        scopes = (
            DataKey.objects.values("organization_id")
            .annotate(versions=Count("id"))
            .filter(versions__gt=1)
        )
        for scope in scopes:
            label = scope["organization_id"] or "platform"
            self.stdout.write(
                f"  {label}: {scope['versions']} data key versions (rotation not finished or "
                "not pruned yet)"
            )
        fields = encrypted_fields()
        self.stdout.write(
            f"Encrypted fields: {', '.join(f'{m._meta.label_lower}.{f.name}' for m, f in fields)}"
        )

    def _rotate_master(self, *, batch_size: int | None, **_: Any) -> None:
        from apps.core.crypto.keys import master_keys
        from apps.core.crypto.rotation import master_key_rotate

        self.stdout.write(
            f"Re-wrapping data keys with the active master key {master_keys().active_id}."
        )
        result = master_key_rotate(batch_size=batch_size, progress=self._progress)
        self._finish(result, "data keys re-wrapped")

    def _rotate_org(
        self, *, organization: str, batch_size: int | None, background: bool, **_: Any
    ) -> None:
        from apps.core import tasks
        from apps.core.crypto.rotation import org_data_key_rotate

        org_id = self._scope(organization)
        if background:
            result = tasks.org_data_key_rotate.delay(str(org_id) if org_id else None)
            self.stdout.write(f"Queued data key rotation (task {result.id}).")
            return
        result = org_data_key_rotate(
            organization_id=org_id, batch_size=batch_size, progress=self._progress
        )
        if result.resumed:
            self.stdout.write(f"Resumed the unfinished rotation onto version {result.version}.")
        self.stdout.write(f"Target data key version: {result.version}.")
        self._finish(result, "secrets re-encrypted")
        self.stdout.write(
            "Old versions are deleted by `manage.py encrypt prune` once no process can still be "
            "using them (after AUTOGLUE_DATA_KEY_CACHE_SECONDS)."
        )

    def _prune(self, *, organization: str, **_: Any) -> None:
        from apps.core.crypto.rotation import data_keys_prune, secrets_reencrypt

        org_id = self._scope(organization)
        secrets_reencrypt(organization_id=org_id, progress=self._progress)
        deleted = data_keys_prune(organization_id=org_id)
        self.stdout.write(
            f"Deleted data key versions: {', '.join(map(str, deleted))}"
            if deleted
            else "Nothing to delete yet."
        )

    # --- Helpers ------------------------------------------------------------------------------

    def _scope(self, value: str) -> uuid.UUID | None:
        # Looked up by label, not imported: core imports no app.
        Organization = django_apps.get_model("orgs", "Organization")  # noqa: N806

        if value == "platform":
            return None
        try:
            org_id = uuid.UUID(value)
        except ValueError:
            raise CommandError("organization: not a UUID (or 'platform').") from None
        if not Organization.objects.filter(pk=org_id).exists():
            raise CommandError(f"organization: {org_id} does not exist.")
        return org_id

    def _progress(self, stage: str, done: int, total: int) -> None:
        self.stdout.write(f"{stage}: {done}/{total}")

    def _finish(self, result: Any, what: str) -> None:
        self.stdout.write(f"Done: {result.done}/{result.total} {what}.")
        for failure in result.failures:
            self.stderr.write(f"  failed: {failure}")
        if result.failures:
            self.stderr.write(f"{len(result.failures)} failed; fix and re-run (it resumes).")
            sys.exit(1)

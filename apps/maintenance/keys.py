"""Backup keys: configured outside the database they protect, several at once by id.

`AUTOGLUE_BACKUP_KEYS` (or the file named by `AUTOGLUE_BACKUP_KEYS_FILE`) holds entries
`<id>:<base64 of 32 random bytes>`, comma- or newline-separated (`#` starts a comment line);
`AUTOGLUE_BACKUP_ACTIVE_KEY` names the one new backups use and may be omitted when there is one.
A backup names its key id in its header, so old backups stay readable while the retired key is
still configured. Errors name an entry by position or id, never the key.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass, field

from django.conf import settings

KEY_BYTES = 32
KEY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class BackupKeyError(Exception):
    """The backup keys are missing or malformed, or a backup names a key that is not set."""


@dataclass(frozen=True)
class BackupKeyRing:
    """The configured backup keys by id and the active one. Its repr shows ids only."""

    keys: dict[str, bytes] = field(repr=False)
    active_id: str

    def get(self, key_id: str) -> bytes:
        try:
            return self.keys[key_id]
        except KeyError:
            raise BackupKeyError(
                f"backup key {key_id!r} is not configured (AUTOGLUE_BACKUP_KEYS has "
                f"{', '.join(sorted(self.keys)) or 'none'})"
            ) from None

    @property
    def active_key(self) -> bytes:
        return self.keys[self.active_id]


def parse_backup_keys(text: str, active_id: str = "") -> BackupKeyRing:
    """Parse the configuration text into a ring."""
    keys: dict[str, bytes] = {}
    entries = [
        entry.strip()
        for line in text.splitlines()
        if line.strip() and not line.strip().startswith("#")
        for entry in line.split(",")
        if entry.strip()
    ]
    for position, entry in enumerate(entries, start=1):
        key_id, sep, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not sep or not KEY_ID_RE.match(key_id):
            raise BackupKeyError(f"backup key entry #{position} is not '<id>:<base64 key>'")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise BackupKeyError(f"backup key {key_id!r} is not base64 of exactly 32 bytes")
        if key_id in keys:
            raise BackupKeyError(f"backup key id {key_id!r} is configured twice")
        keys[key_id] = key
    if not keys:
        raise BackupKeyError("no backup key is configured (AUTOGLUE_BACKUP_KEYS)")
    active_id = active_id.strip() or (next(iter(keys)) if len(keys) == 1 else "")
    if active_id not in keys:
        raise BackupKeyError(
            "AUTOGLUE_BACKUP_ACTIVE_KEY must name one of the configured backup keys"
        )
    return BackupKeyRing(keys=keys, active_id=active_id)


def backup_keys() -> BackupKeyRing:
    """The ring from settings (read on each call, so tests and rotations see changes)."""
    return parse_backup_keys(settings.AUTOGLUE_BACKUP_KEYS, settings.AUTOGLUE_BACKUP_ACTIVE_KEY)


def new_entry(key_id: str = "") -> str:
    """A fresh configuration entry `<id>:<base64>`."""
    key_id = key_id or f"bk-{secrets.token_hex(6)}"
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode('ascii')}"


if __name__ == "__main__":
    import sys

    print(new_entry(sys.argv[1] if len(sys.argv) > 1 else ""))  # noqa: T201

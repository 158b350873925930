"""Master keys (key-encryption keys): configured outside the database, several at once by id.

Kept free of Django model imports: `autoglue/settings.py` parses the configuration with it.

Configuration format (``AUTOGLUE_MASTER_KEYS`` or the file named by
``AUTOGLUE_MASTER_KEYS_FILE``): entries ``<id>:<base64 of 32 random bytes>`` separated by commas
and/or newlines; lines starting with ``#`` are comments. ``AUTOGLUE_ACTIVE_MASTER_KEY`` names the
one that wraps new data keys; it may be omitted when exactly one key is configured.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from apps.core.crypto.errors import MasterKeyConfigError

KEY_BYTES = 32
KEY_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class MasterKeyRing:
    """The configured master keys by id, and which one is active. Its repr shows ids only."""

    keys: dict[str, bytes] = field(repr=False)
    active_id: str

    def __post_init__(self) -> None:
        if self.active_id not in self.keys:
            raise MasterKeyConfigError(
                f"AUTOGLUE_ACTIVE_MASTER_KEY={self.active_id!r} is not one of the configured "
                f"master keys ({', '.join(sorted(self.keys)) or 'none'})."
            )

    def __repr__(self) -> str:
        return f"MasterKeyRing(ids={sorted(self.keys)!r}, active_id={self.active_id!r})"

    __str__ = __repr__

    @property
    def active_key(self) -> bytes:
        return self.keys[self.active_id]

    def get(self, key_id: str) -> bytes | None:
        return self.keys.get(key_id)

    def without(self, key_id: str) -> MasterKeyRing:
        """The same ring minus one (retired) key."""
        return MasterKeyRing(
            keys={k: v for k, v in self.keys.items() if k != key_id}, active_id=self.active_id
        )

    def with_key(self, key_id: str, key: bytes, *, activate: bool = False) -> MasterKeyRing:
        """The same ring plus one key, optionally made the active one."""
        return MasterKeyRing(
            keys={**self.keys, key_id: key}, active_id=key_id if activate else self.active_id
        )


def generate_master_key() -> bytes:
    """32 bytes from the operating system's CSPRNG."""
    return secrets.token_bytes(KEY_BYTES)


def new_key_id() -> str:
    """A short, sortable-enough, unique id for a new master key (`mk-<12 hex>`)."""
    return f"mk-{secrets.token_hex(6)}"


def format_entry(key_id: str, key: bytes) -> str:
    """One configuration entry, `<id>:<base64>`."""
    return f"{key_id}:{base64.b64encode(key).decode('ascii')}"


def _entries(text: str) -> Iterable[str]:
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for entry in line.split(","):
            entry = entry.strip()
            if entry:
                yield entry


def parse_master_keys(text: str, active_id: str = "") -> MasterKeyRing:
    """Parse the configuration text. Errors name the entry by position or id, never the key."""
    keys: dict[str, bytes] = {}
    for position, entry in enumerate(_entries(text), start=1):
        key_id, sep, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not sep or not KEY_ID_RE.match(key_id):
            raise MasterKeyConfigError(
                f"Master key entry #{position} is not '<id>:<base64 key>' with an id of letters, "
                "digits, '.', '_' or '-' (at most 64)."
            )
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES:
            raise MasterKeyConfigError(
                f"Master key {key_id!r} is not the base64 encoding of exactly {KEY_BYTES} bytes."
            )
        if key_id in keys:
            raise MasterKeyConfigError(f"Master key id {key_id!r} is configured twice.")
        keys[key_id] = key
    if not keys:
        raise MasterKeyConfigError(
            "No master key is configured. Set AUTOGLUE_MASTER_KEYS (or AUTOGLUE_MASTER_KEYS_FILE) "
            "to '<id>:<base64 of 32 bytes>'; `python -m apps.core.crypto.master` prints a new one."
        )
    active_id = active_id.strip()
    if not active_id:
        if len(keys) > 1:
            raise MasterKeyConfigError(
                "Several master keys are configured; set AUTOGLUE_ACTIVE_MASTER_KEY to the id of "
                "the one that wraps new data keys."
            )
        active_id = next(iter(keys))
    return MasterKeyRing(keys=keys, active_id=active_id)


if __name__ == "__main__":
    # `python -m apps.core.crypto.master [ID]`: a new entry, before any key is configured (the
    # `manage.py encrypt create-master` equivalent needs settings, which need a key).
    import sys

    print(format_entry(sys.argv[1] if len(sys.argv) > 1 else new_key_id(), generate_master_key()))  # noqa: T201

"""The two seals of an entry.

- `entry_mac`: a keyed HMAC (SHA-256, under a key derived from SECRET_KEY, which never enters
  the database) over the entry's contents, computed by `audit_record` when it inserts the entry.
  Only an entry written through the service carries a valid one, so the sealer refuses a row
  inserted behind the service's back.
- `entry_hash`: SHA-256 over a canonical JSON form of every stored column that means something
  (including `chain`, `seq` and `prev_hash`), set by the sealer; editing any of them, moving a
  row to another place in its chain, or deleting one breaks verification at that row.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils.crypto import salted_hmac

_CONTENT = (
    "chain",
    "organization_id",
    "event",
    "actor_type",
    "actor_id",
    "actor_label",
    "ip",
    "user_agent",
    "request_id",
    "object_type",
    "object_id",
    "object_repr",
    "changes",
    "metadata",
)
_SEALED = (*_CONTENT, "seq", "prev_hash")
_MAC_SALT = "apps.audit.chain.entry_mac"


def _text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    if value is None:
        return None
    if isinstance(value, dict | list | int | str):
        return value
    return str(value)


def _canonical(entry: Any, names: tuple[str, ...]) -> str:
    body = {name: _text(getattr(entry, name)) for name in names}
    body["occurred_at"] = _text(entry.occurred_at)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(entry: Any) -> str:
    """The hash of a sealed entry (a model instance, saved or not)."""
    return hashlib.sha256(_canonical(entry, _SEALED).encode()).hexdigest()


def _mac(entry: Any, secret: str) -> str:
    # The id is part of it: a copy of a genuine entry under a new id is a forgery too.
    value = f"{entry.id}:{_canonical(entry, _CONTENT)}"
    return salted_hmac(_MAC_SALT, value, secret=secret, algorithm="sha256").hexdigest()


def entry_mac(entry: Any) -> str:
    """The keyed MAC `audit_record` stores with a new entry (under the current SECRET_KEY)."""
    return _mac(entry, settings.SECRET_KEY)


def entry_mac_ok(entry: Any) -> bool:
    """The entry's MAC was made by this platform (current SECRET_KEY or a fallback)."""
    for secret in (settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])):
        if hmac.compare_digest(entry.mac or "", _mac(entry, secret)):
            return True
    return False

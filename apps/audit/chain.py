"""The hash that seals each entry: SHA-256 over a canonical JSON form of every stored column
that means something (including `chain`, `seq` and `prev_hash`), so editing any of them, moving
a row to another place in its chain, or deleting one breaks verification at that row."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

_SEALED = (
    "chain",
    "seq",
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
    "prev_hash",
)


def _text(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    if value is None:
        return None
    if isinstance(value, dict | list | int | str):
        return value
    return str(value)


def entry_hash(entry: Any) -> str:
    """The hash of an entry (a model instance, saved or not)."""
    body = {name: _text(getattr(entry, name)) for name in _SEALED}
    body["occurred_at"] = _text(entry.occurred_at)
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()

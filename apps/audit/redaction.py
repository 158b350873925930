"""What a diff may show of a field. Secrets are never copied into an entry: encrypted fields and
anything named like secret material show only that they are set and whether they changed."""

from __future__ import annotations

import re
from typing import Any

from django.db import models

from apps.core.fields import EncryptedTextField

REDACTED = "[redacted]"

# Names of secret material. `public_id`, `key_id` and `*_key_id` are identifiers, not secrets.
_SECRET_NAME = re.compile(
    r"(secret|token|password|passphrase|private|kubeconfig|digest|hash|credential_value"
    r"|certificate_key|wrapped_key|_key$|cookie|session)",
    re.IGNORECASE,
)
_NOT_SECRET = re.compile(r"(_id$|^id$|public_id|fingerprint|_count$)", re.IGNORECASE)


def is_secret_field(field: models.Field) -> bool:
    if isinstance(field, EncryptedTextField):
        return True
    if isinstance(field, models.ForeignKey):
        return False
    name = field.name
    return bool(_SECRET_NAME.search(name)) and not _NOT_SECRET.search(name)


def field_value(instance: models.Model, field: models.Field) -> Any:
    """The field's value as it goes into a diff: JSON-safe, and a marker for secrets (reading a
    secret attribute would decrypt it, so the stored column is compared instead)."""
    if is_secret_field(field):
        stored = instance.__dict__.get(field.attname)
        stored = getattr(stored, "stored", stored)  # an encrypted field's slot: its envelope
        return _SecretMarker(str(stored) if stored is not None else "")
    value = field.value_from_object(instance)
    # A model may show a field partly (a webhook URL's path and query can carry a token).
    shown = getattr(type(instance), "AUDIT_SHOWN", {}).get(field.name)
    if shown is not None:
        return shown(value)
    if isinstance(field, models.JSONField):
        return value
    if value is None or isinstance(value, bool | int | str):
        return value
    return field.value_to_string(instance)


class _SecretMarker:
    """Stands in for a secret in a snapshot; equal when the stored column is."""

    __slots__ = ("stored",)

    def __init__(self, stored: str) -> None:
        self.stored = stored

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _SecretMarker) and other.stored == self.stored

    def __hash__(self) -> int:
        return hash(self.stored)


def public(value: Any) -> Any:
    return REDACTED if isinstance(value, _SecretMarker) else value


def snapshot(instance: models.Model) -> dict[str, Any]:
    """Every concrete field of the row, secrets as markers."""
    return {
        field.attname: field_value(instance, field)
        for field in instance._meta.concrete_fields
        if not field.name.endswith("updated_at")
    }


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """`{field: {"before": ..., "after": ...}}` for fields that differ; secrets redacted."""
    before = before or {}
    after = after or {}
    changes: dict[str, Any] = {}
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old != new:
            entry = {}
            if name in before:
                entry["before"] = public(old)
            if name in after:
                entry["after"] = public(new)
            changes[name] = entry
    return changes


def scrub(data: Any) -> Any:
    """Metadata from explicit calls, with any key named like a secret replaced."""
    if isinstance(data, dict):
        return {
            str(k): (
                REDACTED
                if _SECRET_NAME.search(str(k)) and not _NOT_SECRET.search(str(k))
                else scrub(v)
            )
            for k, v in data.items()
        }
    if isinstance(data, list | tuple):
        return [scrub(v) for v in data]
    if data is None or isinstance(data, bool | int | float | str):
        return data
    return str(data)

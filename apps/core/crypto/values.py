"""Encrypting and decrypting one secret value where it lives. The helpers every app may call
directly when a secret is not a model field; model fields use `EncryptedTextField`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from apps.core.crypto.envelope import (
    FORMAT,
    build_aad,
    format_envelope,
    open_sealed,
    parse_envelope,
    seal,
)
from apps.core.crypto.errors import CryptoError, DecryptionError
from apps.core.crypto.keys import (
    DataKeyMaterial,
    data_key_for_decrypt,
    data_key_for_encrypt,
    scope_label,
)


@dataclass(frozen=True)
class SecretContext:
    """Where a secret lives; authenticated with it (the AAD) so it cannot be moved.

    `model` is the model label (`infrastructure.sshkey`), `field` the field name, `pk` the row's
    primary key, `organization_id` the owning organization or None for platform secrets.
    """

    model: str
    field: str
    pk: str
    organization_id: uuid.UUID | None

    def describe(self) -> str:
        return f"{self.model}.{self.field} of row {self.pk}"

    def aad(self, key: DataKeyMaterial) -> bytes:
        return build_aad(
            "autoglue-secret",
            FORMAT,
            self.model,
            self.field,
            self.pk,
            scope_label(self.organization_id),
            str(key.id),
            str(key.version),
        )


def _org_uuid(value: uuid.UUID | str | None) -> uuid.UUID | None:
    if value in (None, ""):
        return None
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def encrypt_value(plaintext: str, *, context: SecretContext) -> str:
    """Encrypt under the active data key of the context's organization (or the platform)."""
    return encrypt_with_key(
        plaintext, key=data_key_for_encrypt(_org_uuid(context.organization_id)), context=context
    )


def encrypt_with_key(plaintext: str, *, key: DataKeyMaterial, context: SecretContext) -> str:
    """Encrypt under a given data key (rotation names the target version explicitly)."""
    if key.organization_id != _org_uuid(context.organization_id):
        raise CryptoError(f"{context.describe()}: data key of another scope.")
    return format_envelope(key.id, seal(key.key, plaintext.encode("utf-8"), context.aad(key)))


def decrypt_value(stored: str, *, context: SecretContext) -> str:
    """Decrypt a stored envelope; DecryptionError (no plaintext, no key material) otherwise."""
    what = context.describe()
    data_key_id, blob = parse_envelope(stored, what=what)
    key = data_key_for_decrypt(data_key_id)
    if key.organization_id != _org_uuid(context.organization_id):
        raise DecryptionError(f"{what}: encrypted under another organization's key.")
    plaintext = open_sealed(key.key, blob, context.aad(key), what=what)
    try:
        return plaintext.decode("utf-8")
    except UnicodeDecodeError:
        raise DecryptionError(f"{what}: decrypted value is not text.") from None


def reencrypt_value(stored: str, *, key: DataKeyMaterial, context: SecretContext) -> str:
    """The same secret under `key`, for rotation. Never returns the plaintext."""
    return encrypt_with_key(decrypt_value(stored, context=context), key=key, context=context)

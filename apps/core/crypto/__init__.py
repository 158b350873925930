"""Secrets at rest: envelope encryption with a master key outside the database.

    master key (env / file, by id)  --wraps-->  data key per organization (core.DataKey, versioned)
    data key  --AES-256-GCM, AAD = (model, field, pk, organization, key id, version)-->  secret

Modules: `master` (configuration, no Django models), `envelope` (AES-GCM and the stored format),
`keys` (data keys and their cache), `values` (encrypt/decrypt one value in its context),
`rotation` (master-key and data-key rotation services), `errors`. Apps use
`apps.core.fields.EncryptedTextField` and never call AES themselves. See docs/secrets.md.
"""

from apps.core.crypto.errors import (
    CryptoError,
    DecryptionError,
    KeyUnavailableError,
    MasterKeyConfigError,
)

__all__ = ["CryptoError", "DecryptionError", "KeyUnavailableError", "MasterKeyConfigError"]

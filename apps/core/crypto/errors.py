"""Exceptions of the secrets-at-rest layer. Messages name keys and rows by id, never material."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured


class CryptoError(Exception):
    """Base class: something about encrypting or decrypting a secret went wrong."""


class DecryptionError(CryptoError):
    """A stored secret cannot be decrypted: tampered, moved to another row or organization,
    written under a key that no longer exists, or not an envelope at all. Never garbage."""


class KeyUnavailableError(DecryptionError):
    """The key a value (or a wrapped data key) names is not available: a master key that is not
    configured any more, or a data key row that does not exist."""


class MasterKeyConfigError(ImproperlyConfigured):
    """The master keys in the environment are missing or malformed (raised at boot)."""

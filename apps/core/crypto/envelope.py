"""AES-256-GCM and the stored text envelope. Pure functions; no Django, no key lookups.

Stored value of an encrypted field (format version ``ag1``)::

    ag1:<data key id (UUID)>:<base64url, unpadded: 12-byte nonce || ciphertext || 16-byte tag>

The associated data (AAD) is never stored: it is rebuilt from where the value lives (model,
field, row pk, organization, data key id and version), so a value copied anywhere else fails
authentication instead of decrypting.
"""

from __future__ import annotations

import base64
import binascii
import os
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from apps.core.crypto.errors import DecryptionError

FORMAT = "ag1"
PREFIX = f"{FORMAT}:"
NONCE_BYTES = 12
TAG_BYTES = 16


def build_aad(*parts: str) -> bytes:
    """Canonical, unambiguous bytes for a tuple of strings: each part length-prefixed."""
    out = bytearray()
    for part in parts:
        raw = part.encode("utf-8")
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt with a fresh random 96-bit nonce; returns nonce || ciphertext || tag."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, blob: bytes, aad: bytes, *, what: str) -> bytes:
    """Decrypt `seal`'s output. `what` names the value in the error (ids only, no material)."""
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        raise DecryptionError(f"{what}: ciphertext is truncated.")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag:
        raise DecryptionError(
            f"{what}: authentication failed (tampered, moved to another row or organization, "
            "or wrong key)."
        ) from None


def b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def format_envelope(data_key_id: uuid.UUID, blob: bytes) -> str:
    """The text stored in the column."""
    return f"{PREFIX}{data_key_id}:{b64e(blob)}"


def envelope_prefix(data_key_id: uuid.UUID) -> str:
    """Every value encrypted under one data key starts with this (used to find them)."""
    return f"{PREFIX}{data_key_id}:"


def parse_envelope(text: str, *, what: str) -> tuple[uuid.UUID, bytes]:
    """Split a stored value into (data key id, nonce || ciphertext || tag)."""
    fmt, sep1, rest = text.partition(":")
    key_part, sep2, body = rest.partition(":")
    if fmt != FORMAT or not sep1 or not sep2:
        raise DecryptionError(f"{what}: not an encrypted value (unknown format).")
    try:
        data_key_id = uuid.UUID(key_part)
        blob = b64d(body)
    except (ValueError, binascii.Error):
        raise DecryptionError(f"{what}: malformed encrypted value.") from None
    return data_key_id, blob


def looks_like_envelope(text: str) -> bool:
    """True if `text` parses as an envelope (used to refuse plaintext on the write path)."""
    try:
        parse_envelope(text, what="value")
    except DecryptionError:
        return False
    return True

"""SSH key material, generated in memory with `cryptography`.

Formats are the ones paramiko loads directly: RSA private keys as PEM (`RSA PRIVATE KEY`),
Ed25519 private keys in the OpenSSH format (paramiko's Ed25519Key reads no other). The public
key is the one-line OpenSSH authorized_keys form, the fingerprint OpenSSH's `SHA256:<b64>`.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

RSA_BITS = (2048, 3072, 4096)
DEFAULT_RSA_BITS = 4096


@dataclass(frozen=True)
class KeyMaterial:
    """A freshly generated key pair. `repr` never shows the private half."""

    public_key: str
    fingerprint: str
    private_key: str = field(repr=False)


def fingerprint_of(public_key: str) -> str:
    """OpenSSH's `SHA256:` fingerprint of a one-line public key (`type base64 [comment]`)."""
    blob = base64.b64decode(public_key.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def generate_key_pair(*, key_type: str, bits: int | None = None, comment: str = "") -> KeyMaterial:
    """Generate an RSA (`bits` of RSA_BITS) or Ed25519 key pair. A comment with a control
    character is refused: the public key must stay one authorized_keys line."""
    if any(ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 for char in comment):
        raise ValueError("comment must not contain control characters")
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if key_type == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits or DEFAULT_RSA_BITS)
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    elif key_type == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    else:
        raise ValueError(f"unsupported key type {key_type!r}")
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )
    fingerprint = fingerprint_of(public)
    comment = comment.strip()
    if comment:
        public = f"{public} {comment}"
    return KeyMaterial(public_key=public, fingerprint=fingerprint, private_key=private.decode())

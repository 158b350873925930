"""Model fields every app uses for secrets. No app writes crypto code itself.

`EncryptedTextField` holds a secret that is encrypted at rest. Assign plaintext, save, read
plaintext back; the column only ever holds ciphertext.

    class SSHKey(OrgOwnedModel):
        private_key = EncryptedTextField()

INTERIM IMPLEMENTATION: the envelope encryption of the secrets-at-rest issue replaces the body of
this class; its name, import path and constructor stay, so migrations written against it hold.
"""

from __future__ import annotations

from django.db import models


class EncryptedTextField(models.TextField):
    """A secret string, encrypted at rest (see module docstring)."""

    description = "Encrypted text"

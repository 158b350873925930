"""Token formats and the hashing behind them. No database access here.

Formats (the visible prefix lets the original's clients and secret scanners recognise them):
- user API key:  `u_<public id>_<secret>`           (header X-API-KEY)
- org key pair:  `org_<public id>` + `<secret>`       (headers X-ORG-KEY + X-ORG-SECRET)
- refresh token: `<uuid>.<secret>`                   (opaque, body of /auth/refresh)

The public id is 16 hex characters (unique, indexed); secrets are 32 random bytes, base64url.
Secrets are high-entropy, so a keyed HMAC-SHA256 ("pepper") is enough to make a stolen table
useless; API-key secrets additionally keep an argon2id hash, verified only on a cache miss.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from django.conf import settings

USER_KEY_PREFIX = "u"
ORG_KEY_PREFIX = "org"

# RFC 9106 / OWASP low-memory profile (t=2, 19 MiB, p=1): ~37 ms. It only runs on a cache miss.
_argon2 = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, hash_len=32, salt_len=16)


@functools.lru_cache(maxsize=4)
def _pepper_for(configured: str) -> bytes:
    return hmac.new(configured.encode(), b"autoglue-token-pepper-v1", hashlib.sha256).digest()


def _pepper() -> bytes:
    return _pepper_for(getattr(settings, "TOKEN_PEPPER", "") or settings.SECRET_KEY)


def keyed_digest(value: str) -> str:
    """HMAC-SHA256 of a token (or part of one) under the server's pepper, hex."""
    return hmac.new(_pepper(), value.encode(), hashlib.sha256).hexdigest()


def digests_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def new_public_id() -> str:
    return secrets.token_hex(8)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def slow_hash(secret: str) -> str:
    return _argon2.hash(secret)


def slow_verify(stored_hash: str, secret: str) -> bool:
    """argon2id check. Expensive by design: callers cache a success (see authentication)."""
    try:
        return _argon2.verify(stored_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class ParsedKey:
    public_id: str
    secret: str


def _valid_public_id(value: str) -> bool:
    return len(value) == 16 and all(c in "0123456789abcdef" for c in value)


def parse_user_key(token: str) -> ParsedKey | None:
    """`u_<public id>_<secret>` -> parts, or None when the string is not a user key."""
    parts = token.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != USER_KEY_PREFIX or not _valid_public_id(parts[1]):
        return None
    if not parts[2] or len(parts[2]) > 128:
        return None
    return ParsedKey(public_id=parts[1], secret=parts[2])


def parse_org_key(key: str) -> str | None:
    """`org_<public id>` -> the public id, or None."""
    parts = key.strip().split("_", 1)
    if len(parts) != 2 or parts[0] != ORG_KEY_PREFIX or not _valid_public_id(parts[1]):
        return None
    return parts[1]


# A key anywhere in pasted text, in any letter case: `u_<id>_<secret>`, `Bearer u_...`, quoted,
# `org_<id>:<secret>`, `org_<id>` then a tab or newline and the secret, `X-Org-Key: org_<id>`.
_PASTED_KEY = re.compile(r"(?i)(?<![0-9a-z])(u|org)_([0-9a-f]{16})(?![0-9a-f])")


def _pasted_key(text: str) -> tuple[str, str] | None:
    """(prefix, public id), both lower case, of the first key found in `text`."""
    found = _PASTED_KEY.search(text)
    if found is None:
        return None
    return found.group(1).lower(), found.group(2).lower()


def public_id_from_pasted(text: str) -> str | None:
    """The public id of an API key in any form an operator pastes (see _PASTED_KEY), or the
    bare 16-hex id. None when the text holds no key. The secret part is dropped, never
    returned."""
    found = _pasted_key(text)
    if found is not None:
        return found[1]
    candidate = text.strip().lower()
    return candidate if _valid_public_id(candidate) else None


def redacted_key_text(text: str) -> str | None:
    """A pasted key as it may be shown back (in a search box, a message, a title): its public
    form (`u_<id>`, `org_<id>`) whenever the text holds a key and anything besides it (a secret,
    a header name, quotes), since whatever surrounds a key may be its secret. None when there
    is nothing to hide (no key, or exactly a key's public form)."""
    found = _pasted_key(text)
    if found is None:
        return None
    shown = f"{found[0]}_{found[1]}"
    if text.strip() == shown:
        return None
    return shown


def format_user_key(public_id: str, secret: str) -> str:
    return f"{USER_KEY_PREFIX}_{public_id}_{secret}"


def format_org_key(public_id: str) -> str:
    return f"{ORG_KEY_PREFIX}_{public_id}"


def parse_refresh_token(token: str) -> tuple[uuid.UUID, str] | None:
    """`<uuid>.<secret>` -> (id, secret), or None when malformed."""
    if not isinstance(token, str) or "." not in token or len(token) > 256:
        return None
    raw_id, _, secret = token.partition(".")
    try:
        return uuid.UUID(raw_id), secret
    except ValueError:
        return None

"""JWT access tokens: RS256, `kid` header, issuer and audience checked, 1 h lifetime.

Signing and verification go through simplejwt's `TokenBackend` (one per signing key). Keys live
in `SigningKey` rows; each process keeps them in memory and reloads every
`JWT_KEY_CACHE_SECONDS`, so a newly generated key starts signing within that period and rotated
keys keep verifying until they are deactivated or expire.

A fresh installation has no key: `ensure_signing_key()` creates the first one (run at start by
`runplatform` and `manage.py keys ensure`, and on demand when a token must be issued), under a
PostgreSQL advisory lock so processes starting together create exactly one.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import jwt as pyjwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.exceptions import TokenBackendError

if TYPE_CHECKING:
    from apps.accounts.models import SigningKey

ALGORITHM = "RS256"
# RFC 9068's media type for access tokens: an ID token or any other JWT has a different `typ`.
TOKEN_TYP = "at+jwt"  # noqa: S105 (a media type, not a secret)
ACCESS_TOKEN_TYPE = "access"  # noqa: S105 (a claim value, not a secret)
# pg_advisory_xact_lock id that serialises creating the first signing key (any bigint no other
# lock in this database uses).
FIRST_KEY_LOCK_ID = 7022647215772795406


class InvalidAccessToken(Exception):
    """The token is not a valid access token of this installation (reason in the message)."""


class NoSigningKey(Exception):
    """No active signing key exists and none could be created."""


class _KidTokenBackend(TokenBackend):
    """simplejwt's backend, plus the `kid` and `typ` headers it does not write itself."""

    def __init__(self, *, kid: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kid = kid

    def encode(self, payload: dict[str, Any]) -> str:
        jwt_payload = {**payload, "aud": self.audience, "iss": self.issuer}
        return pyjwt.encode(
            jwt_payload,
            self.prepared_signing_key,
            algorithm=self.algorithm,
            headers={"kid": self.kid, "typ": TOKEN_TYP},
        )


@dataclass
class _Keyring:
    loaded_at: float
    signer: _KidTokenBackend | None
    verifiers: dict[str, _KidTokenBackend]


_lock = threading.Lock()
_keyring: _Keyring | None = None


def _backend(key: Any, *, with_private: bool) -> _KidTokenBackend:
    return _KidTokenBackend(
        kid=key.kid,
        algorithm=ALGORITHM,
        signing_key=str(key.private_pem) if with_private else None,
        verifying_key=key.public_pem,
        audience=settings.JWT_AUDIENCE,
        issuer=settings.JWT_ISSUER,
        leeway=settings.JWT_LEEWAY_SECONDS,
    )


def _load() -> _Keyring:
    from apps.accounts.models import SigningKey

    now = timezone.now()
    keys = list(
        SigningKey.objects.filter(is_active=True, alg=ALGORITHM)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .order_by("-created_at")
    )
    verifiers = {k.kid: _backend(k, with_private=False) for k in keys}
    # Only the newest key's private part is ever decrypted.
    signer = _backend(keys[0], with_private=True) if keys else None
    return _Keyring(loaded_at=time.monotonic(), signer=signer, verifiers=verifiers)


def keyring() -> _Keyring:
    global _keyring
    ring = _keyring
    if ring is None or time.monotonic() - ring.loaded_at > settings.JWT_KEY_CACHE_SECONDS:
        with _lock:
            # Threads that queued on the lock behind a reload use its result.
            current = _keyring
            if current is None or current is ring:
                current = _keyring = _load()
            ring = current
    return ring


# A token naming a key this process has not loaded yet is usually a key another process has
# just generated (a rotation): look again, but at most this often, so a flood of made-up kids
# cannot turn every request into a query.
UNKNOWN_KID_RELOAD_SECONDS = 1.0


def _verifier(kid: str) -> _KidTokenBackend | None:
    global _keyring
    ring = keyring()
    backend = ring.verifiers.get(kid)
    if backend is None and time.monotonic() - ring.loaded_at > UNKNOWN_KID_RELOAD_SECONDS:
        with _lock:
            # Once per window even when many requests with made-up kids wait on the lock.
            current = _keyring
            if current is None or current is ring:
                current = _keyring = _load()
            ring = current
        backend = ring.verifiers.get(kid)
    return backend


def reset_keyring() -> None:
    """Forget the cached keys (after generating or retiring one, and in tests)."""
    global _keyring
    _keyring = None


def active_keys() -> list:
    from apps.accounts.models import SigningKey

    now = timezone.now()
    return list(
        SigningKey.objects.filter(is_active=True, alg=ALGORITHM)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .order_by("-created_at")
    )


def ensure_signing_key() -> bool:
    """Create a signing key if none is active; True if this call created it.

    Race-safe across processes: the check and the insert run in one transaction holding a
    transaction-scoped advisory lock, so a second process waits, then sees the first one's key.
    """
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [FIRST_KEY_LOCK_ID])
        if active_keys():
            return False
        signing_key_create()
    reset_keyring()
    return True


def signing_key_create(*, bits: int = 3072, expires_at: datetime | None = None) -> SigningKey:
    """Create an RS256 key pair and make it the signer (here, below the services, because issuing
    a token on a fresh installation creates the first key on demand)."""
    from apps.accounts.models import SigningKey

    private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    key = SigningKey(
        kid=str(uuid.uuid4()), alg=ALGORITHM, public_pem=public_pem, expires_at=expires_at
    )
    key.private_pem = private_pem
    key.save()
    reset_keyring()
    return key


def _signer() -> _KidTokenBackend:
    signer = keyring().signer
    if signer is not None:
        return signer
    # Another process may have created a key since this one loaded the ring; else create one.
    reset_keyring()
    if keyring().signer is None:
        ensure_signing_key()
    signer = keyring().signer
    if signer is None:  # pragma: no cover - only if the insert above did not persist
        raise NoSigningKey("no active JWT signing key could be loaded or created")
    return signer


def issue_access_token(*, user_id: uuid.UUID, extra_claims: dict[str, Any] | None = None) -> str:
    signer = _signer()
    now = int(time.time())
    payload = {
        **(extra_claims or {}),
        "sub": str(user_id),
        "iat": now,
        "nbf": now,
        "exp": now + settings.JWT_ACCESS_TOKEN_SECONDS,
        "jti": uuid.uuid4().hex,
        "token_type": ACCESS_TOKEN_TYPE,
    }
    return signer.encode(payload)


def decode_access_token(token: str) -> dict[str, Any]:
    """The verified claims of an access token, or `InvalidAccessToken`."""
    try:
        header = pyjwt.get_unverified_header(token)
    except pyjwt.PyJWTError as exc:
        raise InvalidAccessToken("malformed token") from exc
    # Only our own algorithm; never keys named by the token itself (jku/x5u/jwk).
    if header.get("alg") != ALGORITHM:
        raise InvalidAccessToken("algorithm not allowed")
    if header.get("typ") != TOKEN_TYP:
        raise InvalidAccessToken("not an access token")
    if any(name in header for name in ("jku", "x5u", "jwk", "x5c")):
        raise InvalidAccessToken("embedded key references are not accepted")
    kid = header.get("kid")
    backend = _verifier(kid) if isinstance(kid, str) else None
    if backend is None:
        raise InvalidAccessToken("unknown signing key")
    try:
        # simplejwt annotates the parameter as its Token class, but decodes the raw string.
        claims = backend.decode(token)  # type: ignore[arg-type]
    except TokenBackendError as exc:
        raise InvalidAccessToken(str(exc)) from exc
    for claim in ("exp", "iat", "sub", "iss", "aud"):
        if claim not in claims:
            raise InvalidAccessToken(f"missing {claim} claim")
    if claims.get("token_type") != ACCESS_TOKEN_TYPE:
        raise InvalidAccessToken("not an access token")
    return claims


def access_token_lifetime() -> timedelta:
    return timedelta(seconds=settings.JWT_ACCESS_TOKEN_SECONDS)

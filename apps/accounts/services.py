"""Identity services: users, API keys, refresh tokens, JWT signing keys."""

from __future__ import annotations

import ipaddress
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.accounts import apikeys, tokens
from apps.accounts import jwt as access_tokens
from apps.accounts.models import APIKey, RefreshToken, SigningKey, User, UserEmail
from apps.audit import events as audit_events
from apps.audit import services as audit
from apps.clusters.models import Cluster
from apps.core.api.errors import APIError, bad_request, not_found
from apps.core.tenancy import KeyScope

logger = logging.getLogger(__name__)


# --- users -------------------------------------------------------------------------------------


def user_update(*, user: User, display_name: str | None = None) -> User:
    """Change the fields a person may edit about themselves (only the display name)."""
    if display_name is not None:
        user.display_name = display_name
        user.save(update_fields=["display_name", "updated_at"])
    return user


def user_access_changed(*, user: User) -> None:
    """A user was disabled or re-enabled, or made or unmade a platform admin: every process
    checks the keys it remembers (and reads their users) again on its next request, so a
    disabled user's keys stop, and a demoted admin's rights end, at once everywhere."""
    apikeys.api_key_generation_change()


@transaction.atomic
def user_get_or_create_admin(*, email: str, password: str | None = None) -> tuple[User, bool]:
    """Create a platform admin, or promote (and re-enable) an existing user. A password is only
    set when given: it is the break-glass sign-in for the admin console."""
    email = User.objects.normalize_email(email).lower()
    user = User.objects.filter(primary_email__iexact=email).first()
    created = user is None
    if user is None:
        user = User.objects.create_user(email, password=password, is_admin=True)
        UserEmail.objects.create(user=user, email=email, is_primary=True, is_verified=True)
    else:
        granted = not user.is_admin or user.is_disabled
        user.is_admin = True
        user.is_disabled = False
        if password:
            user.set_password(password)
        user.save()
        if granted:
            user_access_changed(user=user)
    return user, created


# --- API keys ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedKey:
    key: APIKey
    # The full user key, or the org key; shown once.
    plain: str
    # The org secret (org keys only); shown once.
    secret: str = ""


def _expiry(expires_in_hours: int | None) -> datetime | None:
    if expires_in_hours is None or expires_in_hours <= 0:
        return None
    if expires_in_hours > 24 * 365 * 10:
        raise bad_request("validation_error", "expires_in_hours: at most ten years")
    return timezone.now() + timedelta(hours=expires_in_hours)


MAX_SCOPE_ENTRIES = 32


@dataclass(frozen=True)
class KeyScopeRequest:
    """The scopes asked for a new key (all optional; none at all makes a key as the original's).
    `creator` is the scope of the key the request came with, if any."""

    read_only: bool = False
    allowed_cidrs: tuple[str, ...] = ()
    cluster_ids: tuple[uuid.UUID, ...] = ()
    creator: KeyScope | None = None


def _scope_fields(request: KeyScopeRequest, clusters: QuerySet[Cluster]) -> dict[str, Any]:
    """The validated scope columns of a new key. A key carrying scopes mints no keys: a new key
    could not be proven narrower than it (its networks, clusters, read-only), and a key's
    powers never grow. `clusters` are those the key's owner may name."""
    if request.creator is not None:
        raise APIError(
            403, "key_scope_forbidden", "a scoped API key cannot create keys; sign in instead"
        )
    if len(request.allowed_cidrs) > MAX_SCOPE_ENTRIES:
        raise bad_request("validation_error", f"allowed_cidrs: at most {MAX_SCOPE_ENTRIES}")
    if len(request.cluster_ids) > MAX_SCOPE_ENTRIES:
        raise bad_request("validation_error", f"cluster_ids: at most {MAX_SCOPE_ENTRIES}")
    cidrs = []
    for value in request.allowed_cidrs:
        try:
            network = ipaddress.ip_network(str(value).strip(), strict=False)
        except ValueError:
            raise bad_request(
                "validation_error", f"allowed_cidrs: {str(value)[:64]!r} is not an IP network"
            ) from None
        if str(network) not in cidrs:
            cidrs.append(str(network))
    wanted = {str(c) for c in request.cluster_ids}
    found = {str(pk) for pk in clusters.filter(pk__in=wanted).values_list("pk", flat=True)}
    if wanted - found:
        raise bad_request("validation_error", "cluster_ids: no such cluster in your organization")
    return {
        "read_only": request.read_only,
        "allowed_cidrs": cidrs,
        "allowed_cluster_ids": sorted(wanted),
    }


def api_key_create_for_user(
    *,
    user: User,
    name: str = "",
    expires_in_hours: int | None = None,
    scope: KeyScopeRequest | None = None,
) -> CreatedKey:
    """A new user API key, with optional scopes (fixed here, for its whole life). The plaintext
    is only in the return value. Its clusters may be any of the organizations the user is a
    member of."""
    fields = _scope_fields(
        scope or KeyScopeRequest(),
        Cluster.objects.filter(organization__memberships__user=user),
    )
    public_id, secret = tokens.new_public_id(), tokens.new_secret()
    key = APIKey.objects.create(
        scope=APIKey.Scope.USER,
        purpose="user",
        name=name,
        public_id=public_id,
        secret_hash=tokens.slow_hash(secret),
        user=user,
        expires_at=_expiry(expires_in_hours),
        **fields,
    )
    plain = tokens.format_user_key(public_id, secret)
    apikeys.api_key_remember_good(
        public_id=public_id,
        digest=apikeys.api_key_credential_digest(scope=APIKey.Scope.USER, credential=plain),
    )
    return CreatedKey(key=key, plain=plain)


def api_key_create_for_org(
    *,
    organization,
    name: str = "",
    expires_in_hours: int | None = None,
    purpose: str = "org",
    cluster_id: uuid.UUID | None = None,
    is_ephemeral: bool = False,
    scope: KeyScopeRequest | None = None,
) -> CreatedKey:
    """A new org key/secret pair, acting as the organization's machine principal, with
    optional scopes (fixed here, for its whole life; clusters of this organization only)."""
    fields = _scope_fields(
        scope or KeyScopeRequest(), Cluster.objects.filter(organization=organization)
    )
    public_id, secret = tokens.new_public_id(), tokens.new_secret()
    key = APIKey.objects.create(
        scope=APIKey.Scope.ORG,
        purpose=purpose,
        name=name,
        public_id=public_id,
        secret_hash=tokens.slow_hash(secret),
        organization=organization,
        cluster_id=cluster_id,
        is_ephemeral=is_ephemeral,
        expires_at=_expiry(expires_in_hours),
        **fields,
    )
    plain = tokens.format_org_key(public_id)
    apikeys.api_key_remember_good(
        public_id=public_id,
        digest=apikeys.api_key_credential_digest(
            scope=APIKey.Scope.ORG, credential=f"{plain}:{secret}"
        ),
    )
    return CreatedKey(key=key, plain=plain, secret=secret)


def api_key_cache_clear(*, public_id: str) -> None:
    """Forget what authentication remembers about a key (the shared entry and this process's),
    so the next request re-reads the row: after a revocation or any change to the key."""
    apikeys.api_key_forget(public_id=public_id)


def api_key_revoke(*, key: APIKey) -> None:
    """Revoke a key now. The authentication cache entry is dropped too, so the key stops working
    at once in every process (at worst after the cache TTL if the cache delete is lost)."""
    revoked = APIKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), updated_at=timezone.now()
    )
    if revoked:
        audit.audit_object_event(event=audit_events.KEY_REVOKE, obj=key)
    api_key_cache_clear(public_id=key.public_id)


def api_key_revoke_for_user(*, user: User, key_id: uuid.UUID) -> None:
    key = APIKey.objects.filter(
        pk=key_id, user=user, scope=APIKey.Scope.USER, revoked_at__isnull=True
    ).first()
    if key is None:
        raise not_found("not_found", "api key not found")
    api_key_revoke(key=key)


# --- refresh tokens and token pairs ------------------------------------------------------------


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    token_type: str = "Bearer"  # noqa: S105 (the scheme name, not a secret)

    def as_dict(self) -> dict:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
        }


def _new_refresh_token(
    *, user_id: uuid.UUID, family_id: uuid.UUID, family_expires_at: datetime
) -> str:
    secret = tokens.new_secret()
    expires_at = min(
        timezone.now() + timedelta(seconds=settings.REFRESH_TOKEN_SECONDS), family_expires_at
    )
    row = RefreshToken.objects.create(
        user_id=user_id,
        family_id=family_id,
        digest=tokens.keyed_digest(secret),
        expires_at=expires_at,
        family_expires_at=family_expires_at,
    )
    return f"{row.id}.{secret}"


def token_pair_issue(*, user: User, extra_claims: dict | None = None) -> TokenPair:
    """A fresh login: an access token and the first refresh token of a new family."""
    family_expires_at = timezone.now() + timedelta(seconds=settings.REFRESH_FAMILY_SECONDS)
    refresh = _new_refresh_token(
        user_id=user.pk, family_id=uuid.uuid4(), family_expires_at=family_expires_at
    )
    access = access_tokens.issue_access_token(user_id=user.pk, extra_claims=extra_claims)
    return TokenPair(access, refresh, settings.JWT_ACCESS_TOKEN_SECONDS)


def _invalid_refresh() -> APIError:
    return APIError(401, "invalid_refresh", "invalid or expired refresh token")


def refresh_family_revoke(*, family_id: uuid.UUID) -> int:
    """Revoke every token of one login chain."""
    return RefreshToken.objects.filter(family_id=family_id, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def token_pair_refresh(*, refresh_token: str) -> TokenPair:
    """Rotate a refresh token: the presented token is used up (exactly once, by a conditional
    UPDATE) and a new one of the same family is returned with a new access token. Presenting a
    token that was already used revokes its whole family: someone holds a copy."""
    parsed = tokens.parse_refresh_token(refresh_token)
    if parsed is None:
        raise _invalid_refresh()
    token_id, secret = parsed
    row = RefreshToken.objects.select_related("user").filter(pk=token_id).first()
    if row is None or not tokens.digests_equal(row.digest, tokens.keyed_digest(secret)):
        raise _invalid_refresh()
    now = timezone.now()
    if row.revoked_at is not None or row.expires_at <= now:
        raise _invalid_refresh()
    if row.used_at is not None:
        revoked = refresh_family_revoke(family_id=row.family_id)
        audit.audit_refresh_token_reuse(token=row, revoked=revoked)
        logger.warning(
            "refresh_token_reuse",
            extra={
                "user_id": str(row.user_id),
                "family_id": str(row.family_id),
                "revoked": revoked,
            },
        )
        raise _invalid_refresh()
    if row.user.is_disabled:
        raise APIError(401, "user_disabled", "this account is disabled")
    # The claim and the new pair commit together: if issuing fails (no signing key, a database
    # error), the token is not used up and the client may retry it. A concurrent presentation
    # waits on the claimed row's lock and then sees it used (or, after a rollback, unused).
    with transaction.atomic():
        claimed = RefreshToken.objects.filter(
            pk=row.pk, used_at__isnull=True, revoked_at__isnull=True
        ).update(used_at=now)
        if claimed == 1:
            refresh = _new_refresh_token(
                user_id=row.user_id,
                family_id=row.family_id,
                family_expires_at=row.family_expires_at,
            )
            access = access_tokens.issue_access_token(user_id=row.user_id)
    if claimed != 1:
        # Lost a race with another presentation of the same token: that is reuse too.
        refresh_family_revoke(family_id=row.family_id)
        raise _invalid_refresh()
    return TokenPair(access, refresh, settings.JWT_ACCESS_TOKEN_SECONDS)


def token_logout(*, refresh_token: str) -> None:
    """Revoke the presented token's family. Silent when the token is unknown (logout is 204)."""
    parsed = tokens.parse_refresh_token(refresh_token or "")
    if parsed is None:
        return
    token_id, secret = parsed
    row = RefreshToken.objects.filter(pk=token_id).first()
    if row is not None and tokens.digests_equal(row.digest, tokens.keyed_digest(secret)):
        refresh_family_revoke(family_id=row.family_id)


# --- JWT signing keys --------------------------------------------------------------------------


def signing_key_generate(*, bits: int = 3072, expires_at: datetime | None = None) -> SigningKey:
    """Create an RS256 key pair and make it the signer. Older keys keep verifying until they are
    deactivated or expire (see `signing_key_retire`)."""
    return access_tokens.signing_key_create(bits=bits, expires_at=expires_at)


def signing_key_retire(*, key: SigningKey, at: datetime | None = None) -> SigningKey:
    """Stop a key verifying at `at` (default: after one access-token lifetime, so tokens it
    already signed stay valid until they expire)."""
    key.expires_at = at or timezone.now() + access_tokens.access_token_lifetime()
    key.save(update_fields=["expires_at", "updated_at"])
    access_tokens.reset_keyring()
    return key

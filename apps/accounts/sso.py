"""Google Workspace sign-in (OpenID Connect authorization-code flow with PKCE).

`sso_start` stores a single-use login attempt (state -> nonce, PKCE verifier, SPA origin) in
the cache and returns the provider's authorization URL. `sso_complete` consumes the state,
exchanges the code with the verifier, verifies the ID token (signature from the provider's JWKS,
issuer, audience, expiry, nonce), requires a verified e-mail from an allowed Workspace domain,
links or creates the user, auto-joins organizations with that verified domain, and issues a
token pair. Fixes the original's missing state/nonce/PKCE checks and unverified auto-join.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import jwt as pyjwt
import requests
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction

from apps.accounts import services, tokens
from apps.accounts.models import OAuthIdentity, User, UserEmail
from apps.audit import services as audit
from apps.core.api.errors import APIError, bad_request
from apps.groupsync.services import group_sync_at_sign_in

logger = logging.getLogger(__name__)

_STATE_PREFIX = "sso:state:"
# Binds a login to the browser that started it (login CSRF): set by start, checked and deleted
# by the callback. Only the `ag_jwt` cookie depends on it (see views.SSOCallbackView).
BINDING_COOKIE = "ag_sso_state"
BINDING_COOKIE_PATH = "/api/v1/auth/"
_PROVIDER_PREFIX = "sso:provider:"
# Connect fast (an unreachable provider answers the person within seconds), read patiently.
_HTTP_TIMEOUT = (3.05, 10)
# What a 503 tells the client while the provider cannot be reached and nothing is cached.
PROVIDER_RETRY_AFTER_SECONDS = 30
SUPPORTED_PROVIDERS = ("google",)


@dataclass(frozen=True)
class SSOStart:
    auth_url: str
    # The value of the browser-binding cookie (`BINDING_COOKIE`): a keyed digest of the state.
    binding: str


@dataclass(frozen=True)
class SSOResult:
    tokens: services.TokenPair
    user: User
    mode: str
    origin: str


def _unauthorized(code: str, message: str) -> APIError:
    return APIError(401, code, message)


class ProviderUnavailable(APIError):
    """The identity provider's discovery document or keys cannot be fetched and no copy of them
    is at hand: sign-in through it is impossible for now (503, never a 500)."""

    def __init__(self) -> None:
        super().__init__(
            503,
            "identity_provider_unavailable",
            "the identity provider cannot be reached; try again in a minute",
            retry_after=PROVIDER_RETRY_AFTER_SECONDS,
        )


def provider_configured(provider: str) -> bool:
    return provider in SUPPORTED_PROVIDERS and bool(settings.GOOGLE_CLIENT_ID)


def redirect_uri(provider: str) -> str:
    return f"{settings.OAUTH_REDIRECT_BASE}/api/v1/auth/{provider}/callback"


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def allowed_origins() -> set[str]:
    return {
        origin_of(settings.BASE_URL),
        origin_of(settings.OAUTH_REDIRECT_BASE),
        *settings.SSO_ALLOWED_ORIGINS,
    } - {""}


def _is_http_url(value: Any) -> bool:
    return isinstance(value, str) and urlsplit(value).scheme in ("http", "https")


def discovery_document_valid(document: dict[str, Any]) -> bool:
    """Whether a document can be an OpenID Connect discovery document: an issuer, and http(s)
    authorization, token and key-set endpoints."""
    issuer = document.get("issuer")
    return (
        isinstance(issuer, str)
        and bool(issuer)
        and all(
            _is_http_url(document.get(name))
            for name in ("authorization_endpoint", "token_endpoint", "jwks_uri")
        )
    )


def key_set_valid(document: dict[str, Any]) -> bool:
    """Whether a document can be a JSON Web Key Set: a `keys` list."""
    return isinstance(document.get("keys"), list)


def provider_document(
    url: str, *, valid: Callable[[dict[str, Any]], bool], refresh: bool = False
) -> dict[str, Any]:
    """A JSON document the identity provider publishes (its discovery document, its keys),
    shared by the API's sign-in and the console's. Served from the cache for
    SSO_PROVIDER_CACHE_SECONDS; past that (or with `refresh`) fetched again, and if the provider
    cannot be reached then, the last copy is used for up to SSO_PROVIDER_STALE_SECONDS more, so a
    short outage does not stop sign-ins. With no copy at all: `ProviderUnavailable`.

    A document `valid` refuses (a proxy's `{"error": "quota exceeded"}` answered 200) counts as
    a failed fetch: it never replaces a good copy, which would break every sign-in until it
    expired."""
    key = _PROVIDER_PREFIX + hashlib.sha256(url.encode()).hexdigest()
    cached = cache.get(key)
    now = time.time()
    if cached and not refresh and now - cached["fetched_at"] < settings.SSO_PROVIDER_CACHE_SECONDS:
        return cached["document"]
    try:
        response = requests.get(url, timeout=_HTTP_TIMEOUT)
        response.raise_for_status()
        document = response.json()
        if not isinstance(document, dict) or not valid(document):
            raise ValueError("not the document asked for")
    except (requests.RequestException, ValueError) as exc:
        extra = {"event": "identity_provider_unreachable", "url": url, "error": str(exc)}
        if cached:
            logger.warning(
                "identity provider unreachable: using its last known document",
                extra={**extra, "age_seconds": int(now - cached["fetched_at"])},
            )
            return cached["document"]
        logger.warning("identity provider unreachable", extra=extra)
        raise ProviderUnavailable from exc
    cache.set(
        key,
        {"fetched_at": now, "document": document},
        timeout=settings.SSO_PROVIDER_CACHE_SECONDS + settings.SSO_PROVIDER_STALE_SECONDS,
    )
    return document


def _discovery() -> dict:
    issuer = settings.GOOGLE_OIDC_ISSUER.rstrip("/")
    return provider_document(
        f"{issuer}/.well-known/openid-configuration", valid=discovery_document_valid
    )


def _pkce_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def state_binding(state: str) -> str:
    """The binding cookie's value for a state: an HMAC under the server pepper, so the cookie
    neither reveals the state nor can be made up for a state someone else started."""
    return tokens.keyed_digest(f"sso-state:{state}")


def binding_matches(state: str, cookie: str | None) -> bool:
    """Whether the callback's browser is the one that started the login (constant time)."""
    if not state or not cookie:
        return False
    return tokens.digests_equal(state_binding(state), cookie)


def sso_start(*, provider: str, mode: str = "", origin: str = "") -> SSOStart:
    """Begin a login; returns the URL to send the browser to and the binding cookie's value."""
    if not provider_configured(provider):
        raise bad_request("unsupported_provider", f"provider {provider!r} is not configured")
    mode = "spa" if mode == "spa" else ""
    origin = origin.rstrip("/")
    if mode == "spa":
        origin = origin or origin_of(settings.BASE_URL)
        if origin not in allowed_origins():
            raise bad_request("invalid_origin", "origin is not allowed to receive tokens")
    config = _discovery()
    state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
    cache.set(
        _STATE_PREFIX + state,
        {
            "provider": provider,
            "nonce": nonce,
            "verifier": verifier,
            "mode": mode,
            "origin": origin,
        },
        timeout=settings.SSO_STATE_SECONDS,
    )
    params = {
        "response_type": "code",
        "client_id": settings.GOOGLE_CLIENT_ID,
        "redirect_uri": redirect_uri(provider),
        "scope": "openid email profile",
        "state": state,
        "nonce": nonce,
        "code_challenge": _pkce_challenge(verifier),
        "code_challenge_method": "S256",
        "prompt": "select_account",
    }
    if len(settings.GOOGLE_WORKSPACE_DOMAINS) == 1:
        # A hint for Google's account chooser; the real check is on the ID token's `hd`.
        params["hd"] = settings.GOOGLE_WORKSPACE_DOMAINS[0]
    return SSOStart(
        auth_url=f"{config['authorization_endpoint']}?{urlencode(params)}",
        binding=state_binding(state),
    )


def _consume_state(provider: str, state: str) -> dict:
    key = _STATE_PREFIX + (state or "")
    attempt = cache.get(key) if state else None
    # Single use: only the request that actually deletes the entry may continue.
    if attempt is None or not cache.delete(key) or attempt["provider"] != provider:
        raise _unauthorized("invalid_state", "unknown, expired or already used login state")
    return attempt


def _exchange(config: dict, provider: str, code: str, verifier: str) -> dict:
    try:
        response = requests.post(
            config["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri(provider),
                "code_verifier": verifier,
            },
            auth=(settings.GOOGLE_CLIENT_ID, settings.GOOGLE_CLIENT_SECRET),
            timeout=_HTTP_TIMEOUT,
        )
    except (requests.ConnectionError, requests.Timeout) as exc:
        # The provider is down, not refusing this sign-in: the person may simply try again.
        logger.warning(
            "identity provider unreachable",
            extra={"event": "identity_provider_unreachable", "error": type(exc).__name__},
        )
        raise ProviderUnavailable from exc
    except requests.RequestException as exc:
        raise _unauthorized("exchange_failed", "could not exchange the code") from exc
    if response.status_code != 200:
        raise _unauthorized("exchange_failed", "the identity provider refused the code")
    try:
        body = response.json()
    except ValueError as exc:
        # A 200 that is not JSON (a proxy's HTML page, say) is the provider failing, not us.
        raise _unauthorized(
            "exchange_failed", "the identity provider sent an invalid reply"
        ) from exc
    if not isinstance(body, dict):
        raise _unauthorized("exchange_failed", "the identity provider sent an invalid reply")
    return body


def _verify_id_token(config: dict, id_token: str, nonce: str) -> dict:
    claims = id_token_claims(config, id_token, audience=settings.GOOGLE_CLIENT_ID)
    if not nonce or claims.get("nonce") != nonce:
        raise _unauthorized("id_token_invalid", "the ID token's nonce does not match")
    return claims


def id_token_claims(config: dict, id_token: str, *, audience: str) -> dict:
    """The claims of an ID token whose signature (the provider's JWKS, RS256 only), issuer,
    audience and expiry check out; the nonce is the caller's to compare. Shared by the API's
    sign-in and the console's (apps.accounts.oidc)."""
    try:
        key = _signing_key(config["jwks_uri"], pyjwt.get_unverified_header(id_token).get("kid"))
        claims = pyjwt.decode(
            id_token,
            key,
            algorithms=["RS256"],
            audience=audience,
            issuer=config["issuer"],
            leeway=60,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )
    except pyjwt.PyJWTError as exc:
        logger.warning("id token rejected", extra={"error": str(exc)})
        raise _unauthorized("id_token_invalid", "the ID token is not valid") from exc
    return claims


def _signing_key(jwks_uri: str, kid: str | None) -> Any:
    """The provider key an ID token names. The key set comes from `provider_document` (cached);
    a kid it does not hold yet (the provider rotated its keys) fetches the set once more."""
    for refresh in (False, True):
        keys = pyjwt.PyJWKSet.from_dict(
            provider_document(jwks_uri, valid=key_set_valid, refresh=refresh)
        ).keys
        if not kid:
            # Without a kid only an unambiguous key set will do (Google always sends a kid).
            if len(keys) != 1:
                raise pyjwt.InvalidTokenError("ID token without kid and several provider keys")
            return keys[0].key
        match = next((k.key for k in keys if k.key_id == kid), None)
        if match is not None:
            return match
    raise pyjwt.InvalidTokenError("no provider key with the ID token's kid")


def _check_identity(claims: dict) -> str:
    email = str(claims.get("email") or "").strip().lower()
    if not email or "@" not in email:
        raise _unauthorized("email_missing", "the identity provider sent no e-mail address")
    if claims.get("email_verified") is not True:
        raise APIError(403, "email_not_verified", "the e-mail address is not verified")
    domains = settings.GOOGLE_WORKSPACE_DOMAINS
    if domains:
        hd = str(claims.get("hd") or "").lower()
        if hd not in domains or email.rsplit("@", 1)[1] != hd:
            raise APIError(403, "domain_not_allowed", "this Workspace domain may not sign in")
    return email


def _workspace_managed(email: str, hd: str) -> bool:
    """True when the ID token's `hd` claim says the provider's Workspace manages this very
    address. Only then does the e-mail prove ownership of an account we already know: a consumer
    account (no `hd`) can carry any verified address, including someone else's old one."""
    return bool(hd) and email.rsplit("@", 1)[1] == hd.strip().lower()


def _account_exists() -> APIError:
    return APIError(
        403,
        "account_exists",
        "an account with this e-mail already exists; sign in with the account it was created with",
    )


def _user_by_email(email: str) -> User | None:
    known = UserEmail.objects.select_related("user").filter(email__iexact=email).first()
    return known.user if known else User.objects.filter(primary_email__iexact=email).first()


@transaction.atomic
def user_from_identity(*, provider: str, subject: str, email: str, name: str, hd: str = "") -> User:
    """The user for a verified identity: by the (provider, subject) link; else, for a
    Workspace-managed address (`hd` equals the e-mail's domain), by a known e-mail address
    (linking it); else a new user. A new identity whose address belongs to an existing user but
    is not Workspace-managed is refused (403 `account_exists`): a matching e-mail alone does not
    prove it is the same person. Auto-joins organizations whose verified domain is the e-mail's
    domain, and only for Workspace-managed addresses."""
    from apps.orgs.models import Membership, Organization

    managed = _workspace_managed(email, hd)
    identity = (
        OAuthIdentity.objects.select_related("user")
        .filter(provider=provider, subject=subject)
        .first()
    )
    user: User | None
    hd = (hd or "").strip().lower()
    if identity is not None:
        user = identity.user
        if (identity.email, identity.hd) != (email, hd):
            # The provider's address for this subject can change (a renamed Workspace account);
            # group sync reads groups by it, so it must be today's.
            identity.email, identity.hd = email, hd
            identity.save(update_fields=["email", "hd", "updated_at"])
        else:
            identity.save(update_fields=["updated_at"])  # the most recent sign-in
    else:
        user = _user_by_email(email)
        if user is not None and not managed:
            raise _account_exists()
        if user is None:
            try:
                with transaction.atomic():
                    user = User.objects.create_user(email, display_name=name)
                    UserEmail.objects.create(
                        user=user, email=email, is_primary=True, is_verified=True
                    )
            except IntegrityError:
                # A concurrent sign-in created the account first: the same rule applies to it.
                user = _user_by_email(email)
                if user is None or not managed:
                    raise _account_exists() from None
        try:
            with transaction.atomic():
                OAuthIdentity.objects.create(
                    user=user,
                    provider=provider,
                    subject=subject,
                    email=email,
                    email_verified=True,
                    hd=hd,
                )
        except IntegrityError:
            # A concurrent login of the same identity linked it first.
            user = OAuthIdentity.objects.get(provider=provider, subject=subject).user
    if managed:
        domain = email.rsplit("@", 1)[1]
        for org in Organization.objects.filter(
            domain__iexact=domain, domain_verified_at__isnull=False
        ):
            Membership.objects.get_or_create(
                user=user, organization=org, defaults={"role": Membership.Role.MEMBER}
            )
    return user


def groups_at_sign_in(*, provider: str, user: User, email: str, hd: str) -> None:
    """Roles from the person's Workspace groups (apps.groupsync), after the sign-in matched
    them. It never raises and never blocks the sign-in."""
    if provider == "google":
        group_sync_at_sign_in(user=user, email=email, hd=hd)


def sso_complete(*, provider: str, code: str, state: str) -> SSOResult:
    """Finish a login started by `sso_start` (see the module docstring)."""
    if not provider_configured(provider):
        raise bad_request("unsupported_provider", f"provider {provider!r} is not configured")
    attempt = _consume_state(provider, state)
    if not code:
        raise bad_request("invalid_request", "code is required")
    config = _discovery()
    token_response = _exchange(config, provider, code, attempt["verifier"])
    id_token = token_response.get("id_token")
    if not id_token:
        raise _unauthorized("no_id_token", "the identity provider sent no ID token")
    claims = _verify_id_token(config, id_token, attempt["nonce"])
    email = _check_identity(claims)
    user = user_from_identity(
        provider=provider,
        subject=str(claims["sub"]),
        email=email,
        name=str(claims.get("name") or email.split("@")[0]),
        hd=str(claims.get("hd") or ""),
    )
    if user.is_disabled:
        raise _unauthorized("user_disabled", "this account is disabled")
    groups_at_sign_in(provider=provider, user=user, email=email, hd=str(claims.get("hd") or ""))
    pair = services.token_pair_issue(
        user=user, extra_claims={"email": user.primary_email, "name": user.display_name}
    )
    audit.audit_sign_in(user=user, method=provider)
    return SSOResult(tokens=pair, user=user, mode=attempt["mode"], origin=attempt["origin"])

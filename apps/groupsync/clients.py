"""Reading a person's Google groups with a service account (the network edge of group sync).

A service-account JWT bearer grant (RFC 7523: an RS256 assertion signed with the account's key,
`sub` = the delegated Workspace admin) buys an access token for one read-only scope. Cloud
Identity's `groups/-/memberships:searchTransitiveGroups` answers every group the person belongs
to, nested ones included. Where Cloud Identity refuses (403/404 from the API, or a token refused
for its scope: the delegation lacks it), the Directory API's `groups?userKey=` is read instead
(direct memberships only). Every page is followed; anything else that goes wrong (5xx, a
timeout, a page that is not what the API answers) is a `GroupsReadError`, and the caller changes
nothing.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from django.conf import settings

CLOUD_IDENTITY_SCOPE = "https://www.googleapis.com/auth/cloud-identity.groups.readonly"
DIRECTORY_SCOPE = "https://www.googleapis.com/auth/admin.directory.group.readonly"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Cloud Identity's label for Google groups (as opposed to security-only or dynamic groups' other
# labels): every Workspace group carries it.
_DISCUSSION_FORUM = "cloudidentity.googleapis.com/groups.discussion_forum"
# A person in more groups than this many pages hold is refused rather than read in part.
MAX_PAGES = 50
ASSERTION_LIFETIME = 300
# A conservative address shape: it goes into Cloud Identity's query language, between quotes.
# Always used with fullmatch (`$` would let a trailing newline through).
EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}")


_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def google_url(name: str) -> str:
    """The setting `name` (GOOGLE_TOKEN_URL, GOOGLE_CLOUD_IDENTITY_URL, GOOGLE_DIRECTORY_URL),
    refused unless it is https (plain http only to loopback, for stand-ins): the assertion and
    the access tokens travel to these addresses."""
    value = str(getattr(settings, name))
    parts = urlsplit(value)
    if parts.scheme == "https" and parts.hostname:
        return value.rstrip("/")
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return value.rstrip("/")
    raise GroupsReadError(f"{name} must be an https URL")


class GroupsReadError(Exception):
    """The groups could not be read completely. The message names what failed (a status, an
    API), never a token, a key or an answer's body."""


class RateLimited(GroupsReadError):
    """Google asked us to slow down (429, or a 403 whose reason is a rate limit)."""


_RATE_LIMIT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"}


def _rate_limited(response: requests.Response) -> bool:
    if response.status_code == 429:
        return True
    if response.status_code != 403:
        return False
    try:
        errors = response.json()["error"].get("errors") or []
        return any(e.get("reason") in _RATE_LIMIT_REASONS for e in errors)
    except (ValueError, KeyError, TypeError, AttributeError):
        return False


# Access tokens by (organization, key id, subject, scope) → (token, good until, time.time()):
# one per hour per organization and scope instead of one per person read. Process memory only:
# a token is a credential and is not written anywhere.
TokenCache = dict[tuple[str, str, str, str], tuple[str, float]]
_TOKENS: TokenCache = {}


class _FallBack(Exception):
    """Cloud Identity refused (403/404 or no token for its scope): try the Directory API."""


@dataclass(frozen=True)
class GroupsRead:
    """A complete read of one person's groups. `transitive` is False when it came from the
    Directory API fallback (direct memberships only): groups reached through a nested group are
    missing, so the caller must not take anything away on its strength."""

    groups: list[str]
    transitive: bool


@dataclass(frozen=True)
class ServiceAccountKey:
    client_email: str
    private_key_id: str
    private_key: str


def service_account_key_parse(text: str) -> ServiceAccountKey:
    """The parts of a Google service-account JSON key that sync uses; ValueError (with a message
    that never quotes the key) when it is not one."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        raise ValueError("must be the service account's JSON key file") from None
    if not isinstance(data, dict) or data.get("type") != "service_account":
        raise ValueError('must be a JSON key of type "service_account"')
    email, key_id, pem = (data.get(n) for n in ("client_email", "private_key_id", "private_key"))
    if not isinstance(email, str) or not EMAIL.fullmatch(email):
        raise ValueError("client_email is missing or not an e-mail address")
    if not isinstance(key_id, str) or not key_id or len(key_id) > 200:
        raise ValueError("private_key_id is missing")
    try:
        loaded = load_pem_private_key(str(pem).encode(), password=None)
    except (TypeError, ValueError):
        raise ValueError("private_key is not a PEM private key") from None
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise ValueError("private_key must be an RSA key")
    return ServiceAccountKey(client_email=email, private_key_id=key_id, private_key=str(pem))


class WorkspaceGroupsClient:
    """Reads the groups of one person at a time, as `subject` through the service account."""

    def __init__(
        self,
        *,
        key: ServiceAccountKey,
        subject: str,
        session: requests.Session | None = None,
        now: Callable[[], float] = time.time,
        cache_as: str = "",
    ) -> None:
        self.key = key
        # With `cache_as` (the organization's id) tokens are shared across clients of the same
        # organization, key and subject; without, they live as long as this client.
        self._cache_as = cache_as
        self.subject = subject
        self.session = session or requests.Session()
        self.now = now
        self.timeout = float(settings.GOOGLE_GROUPS_TIMEOUT_SECONDS)
        for name in ("GOOGLE_TOKEN_URL", "GOOGLE_CLOUD_IDENTITY_URL", "GOOGLE_DIRECTORY_URL"):
            google_url(name)  # refuse a plain-http address before anything is sent
        self._tokens: dict[str, str] = {}
        self._deadline = float("inf")

    # --- the token -----------------------------------------------------------------------------

    def assertion(self, scope: str) -> str:
        issued = int(self.now())
        claims = {
            "iss": self.key.client_email,
            "sub": self.subject,
            "scope": scope,
            "aud": google_url("GOOGLE_TOKEN_URL"),
            "iat": issued,
            # Google accepts up to an hour; a short life limits what a leaked assertion buys.
            "exp": issued + ASSERTION_LIFETIME,
        }
        return jwt.encode(
            claims,
            self.key.private_key,
            algorithm="RS256",
            headers={"kid": self.key.private_key_id},
        )

    def access_token(self, scope: str) -> str:
        if scope in self._tokens:
            return self._tokens[scope]
        cache_key = (self._cache_as, self.key.private_key_id, self.subject, scope)
        cached = _TOKENS.get(cache_key) if self._cache_as else None
        if cached is not None and cached[1] > self.now():
            self._tokens[scope] = cached[0]
            return cached[0]
        response = self._send(
            "post",
            google_url("GOOGLE_TOKEN_URL"),
            "token endpoint",
            data={"grant_type": JWT_BEARER, "assertion": self.assertion(scope)},
        )
        if response.status_code == 429:
            raise RateLimited("token endpoint: rate limited (429)")
        if response.status_code in (400, 401, 403):
            # unauthorized_client / access_denied: the delegation does not cover this scope.
            raise _FallBack(f"token endpoint refused the scope ({response.status_code})")
        answer = self._json(response, "token endpoint")
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise GroupsReadError("token endpoint: no access_token in its answer")
        self._tokens[scope] = token
        lifetime = answer.get("expires_in")
        if self._cache_as and isinstance(lifetime, int) and lifetime > 120:
            # Used until a minute before Google's expiry, so no read starts with a dying token.
            _TOKENS[cache_key] = (token, self.now() + lifetime - 60)
        return token

    # --- the groups ----------------------------------------------------------------------------

    def groups_of(self, email: str, *, deadline: float | None = None) -> GroupsRead:
        """Every group e-mail (lower case) `email` belongs to. Transitive through Cloud
        Identity; direct only through the Directory API fallback (`transitive=False`).
        `deadline` (time.monotonic()) may cut the read shorter than the timeout."""
        if not EMAIL.fullmatch(email):
            raise GroupsReadError("the person's address cannot be looked up")
        # The whole read, every page and the fallback included, fits in one timeout: a sign-in
        # waits for it, and a slow Google must not hold the sign-in for many timeouts in a row.
        self._deadline = time.monotonic() + self.timeout
        if deadline is not None:
            self._deadline = min(self._deadline, deadline)
        try:
            return GroupsRead(sorted(set(self._cloud_identity(email))), transitive=True)
        except _FallBack:
            pass
        try:
            return GroupsRead(sorted(set(self._directory(email))), transitive=False)
        except _FallBack as exc:
            raise GroupsReadError(f"Directory API: {exc}") from None

    def _cloud_identity(self, email: str) -> Iterator[str]:
        token = self.access_token(CLOUD_IDENTITY_SCOPE)
        base = google_url("GOOGLE_CLOUD_IDENTITY_URL")
        url = f"{base}/v1/groups/-/memberships:searchTransitiveGroups"
        query = f"member_key_id == '{email}' && '{_DISCUSSION_FORUM}' in labels"
        for page in self._pages(url, token, {"query": query}, "Cloud Identity", fallback=True):
            for membership in _list(page, "memberships", "Cloud Identity"):
                key = membership.get("groupKey") if isinstance(membership, dict) else None
                group = key.get("id") if isinstance(key, dict) else None
                if not isinstance(group, str) or "@" not in group:
                    raise GroupsReadError("Cloud Identity: a membership without groupKey.id")
                yield group.lower()

    def _directory(self, email: str) -> Iterator[str]:
        token = self.access_token(DIRECTORY_SCOPE)
        url = f"{google_url('GOOGLE_DIRECTORY_URL')}/admin/directory/v1/groups"
        params = {"userKey": email, "maxResults": "200"}
        for page in self._pages(url, token, params, "Directory API", fallback=False):
            for group in _list(page, "groups", "Directory API"):
                address = group.get("email") if isinstance(group, dict) else None
                if not isinstance(address, str) or "@" not in address:
                    raise GroupsReadError("Directory API: a group without an email")
                yield address.lower()

    def _pages(
        self, url: str, token: str, params: dict[str, str], api: str, *, fallback: bool
    ) -> Iterator[dict[str, Any]]:
        seen: set[str] = set()
        page_token = ""
        for number in range(MAX_PAGES):
            query = {**params, **({"pageToken": page_token} if page_token else {})}
            response = self._send(
                "get", url, api, params=query, headers={"Authorization": f"Bearer {token}"}
            )
            if _rate_limited(response):
                raise RateLimited(f"{api}: rate limited ({response.status_code})")
            # Only a refusal of the very first request means "this API is not available to us";
            # a refusal after pages were read is a failed read, never a reason to start over
            # with the direct-only Directory API.
            if fallback and number == 0 and response.status_code in (403, 404):
                raise _FallBack(f"{api} answered {response.status_code}")
            page = self._json(response, api)
            yield page
            page_token = page.get("nextPageToken") or ""
            if not page_token:
                return
            if not isinstance(page_token, str) or page_token in seen:
                raise GroupsReadError(f"{api}: a page token that does not advance")
            seen.add(page_token)
        raise GroupsReadError(f"{api}: more than {MAX_PAGES} pages")

    # --- HTTP ----------------------------------------------------------------------------------

    def _send(self, method: str, url: str, what: str, **kwargs: Any) -> requests.Response:
        remaining = min(self.timeout, self._deadline - time.monotonic())
        if remaining <= 0:
            raise GroupsReadError(f"{what}: the read took longer than {self.timeout:g} s")
        try:
            return self.session.request(method, url, timeout=remaining, **kwargs)
        except requests.RequestException as exc:
            raise GroupsReadError(f"{what}: {type(exc).__name__}") from None

    def _json(self, response: requests.Response, what: str) -> dict[str, Any]:
        if response.status_code != 200:
            raise GroupsReadError(f"{what} answered {response.status_code}")
        try:
            data = response.json()
        except ValueError:
            raise GroupsReadError(f"{what}: an answer that is not JSON") from None
        if not isinstance(data, dict):
            raise GroupsReadError(f"{what}: an answer that is not a JSON object")
        return data


def _list(page: dict[str, Any], name: str, api: str) -> list[Any]:
    # An empty result omits the list altogether (proto3 JSON).
    items = page.get(name, [])
    if not isinstance(items, list):
        raise GroupsReadError(f"{api}: `{name}` is not a list")
    return items

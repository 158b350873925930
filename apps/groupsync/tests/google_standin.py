"""A loopback stand-in for the three Google endpoints group sync calls, speaking their wire
shapes: the OAuth token endpoint (RFC 7523 JWT bearer grant, Google's `unauthorized_client`
refusal), Cloud Identity's `groups/-/memberships:searchTransitiveGroups` (`memberships[]` with
`groupKey.id` and `relationType`, `nextPageToken`, google.rpc error bodies) and the Directory
API's `groups?userKey=` (`groups[]` with `email`, `nextPageToken`, its `error.errors[]` body).

It checks what Google checks: the assertion's RS256 signature against the service account's
public key, `iss`, `aud`, `sub`, `scope`, `iat`/`exp`, and that each API call carries a token
issued for that API's scope. Groups form a graph (a group may be a member of a group), so
transitive answers are computed, not canned.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from apps.groupsync import clients

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PRIVATE_PEM = _KEY.private_bytes(
    serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8,
    serialization.NoEncryption(),
).decode()
PUBLIC_KEY = _KEY.public_key()
CLIENT_EMAIL = "groupsync@acme-project.iam.gserviceaccount.com"
KEY_ID = "0123456789abcdef0123456789abcdef01234567"
ADMIN = "admin@acme.example"
_QUERY = re.compile(
    r"^member_key_id == '([^']+)' && 'cloudidentity\.googleapis\.com/groups\.discussion_forum'"
    r" in labels$"
)


def service_account_json(private_pem: str = PRIVATE_PEM) -> str:
    """A key file shaped like the one Google Cloud's console downloads."""
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "acme-project",
            "private_key_id": KEY_ID,
            "private_key": private_pem,
            "client_email": CLIENT_EMAIL,
            "client_id": "104729000000000000000",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": "https://oauth2.googleapis.com/token",
        }
    )


@dataclass
class Google:
    """The stand-in's state; tests change it between calls."""

    base: str = ""
    # group e-mail -> its direct members (people or groups, by e-mail)
    members: dict[str, set[str]] = field(default_factory=dict)
    # scopes the domain-wide delegation grants the service account
    delegated: set[str] = field(
        default_factory=lambda: {clients.CLOUD_IDENTITY_SCOPE, clients.DIRECTORY_SCOPE}
    )
    page_size: int = 2
    # "cloud_identity" / "directory" / "token" -> status to answer instead (403, 500, ...)
    fail: dict[str, int] = field(default_factory=dict)
    # answer this status on page N (1-based) of either API instead of the page
    fail_page: tuple[int, int] | None = None
    # answer a page that is not JSON on page N
    garbage_page: int | None = None
    delay_seconds: float = 0.0
    tokens: dict[str, str] = field(default_factory=dict)  # access token -> scope
    assertions: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    requests: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)

    def add(self, group: str, *members: str) -> None:
        self.members.setdefault(group, set()).update(members)

    def direct_groups(self, key: str) -> list[str]:
        return sorted(g for g, people in self.members.items() if key in people)

    def transitive_groups(self, key: str) -> dict[str, str]:
        """group -> DIRECT or INDIRECT."""
        found = dict.fromkeys(self.direct_groups(key), "DIRECT")
        todo = list(found)
        while todo:
            for parent in self.direct_groups(todo.pop()):
                if parent not in found:
                    found[parent] = "INDIRECT"
                    todo.append(parent)
        return found


def _google_error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def _directory_error(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
        }
    }


_STATUS = {
    429: "RESOURCE_EXHAUSTED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class _Handler(BaseHTTPRequestHandler):
    google: Google

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet test output

    def _answer(self, status: int, body: Any, raw: bytes | None = None) -> None:
        data = raw if raw is not None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        google = self.google
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode())
        if urlsplit(self.path).path != "/token":
            self._answer(404, _google_error(404, "NOT_FOUND", "no such endpoint"))
            return
        if "token" in google.fail:
            code = google.fail["token"]
            self._answer(code, _google_error(code, _STATUS.get(code, "UNKNOWN"), "token failure"))
            return
        assertion = (form.get("assertion") or [""])[0]
        if form.get("grant_type") != [clients.JWT_BEARER] or not assertion:
            self._answer(400, {"error": "unsupported_grant_type"})
            return
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(
                assertion,
                PUBLIC_KEY,
                algorithms=["RS256"],
                audience=f"{google.base}/token",
                issuer=CLIENT_EMAIL,
                options={"require": ["iss", "aud", "iat", "exp", "sub", "scope"]},
            )
        except jwt.PyJWTError:
            self._answer(400, {"error": "invalid_grant", "error_description": "Invalid JWT"})
            return
        google.assertions.append((header, claims))
        if (
            header.get("kid") != KEY_ID
            or claims["sub"] != ADMIN
            or claims["exp"] - claims["iat"] > 3600
            or claims["scope"] not in google.delegated
        ):
            self._answer(
                401,
                {
                    "error": "unauthorized_client",
                    "error_description": "Client is unauthorized to retrieve access tokens "
                    "using this method, or client not authorized for any of the scopes "
                    "requested.",
                },
            )
            return
        token = "ya29." + secrets.token_urlsafe(24)
        google.tokens[token] = claims["scope"]
        self._answer(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    def do_GET(self) -> None:
        google = self.google
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        google.requests.append((url.path, query))
        if google.delay_seconds:
            time.sleep(google.delay_seconds)
        if url.path == "/v1/groups/-/memberships:searchTransitiveGroups":
            self._cloud_identity(query)
        elif url.path == "/admin/directory/v1/groups":
            self._directory(query)
        else:
            self._answer(404, _google_error(404, "NOT_FOUND", "no such endpoint"))

    def _scope_ok(self, scope: str) -> bool:
        auth = self.headers.get("Authorization", "")
        return self.google.tokens.get(auth.removeprefix("Bearer ")) == scope

    def _page(self, items: list[Any], query: dict[str, list[str]], name: str, extra: dict) -> None:
        google = self.google
        start = int((query.get("pageToken") or ["0"])[0].removeprefix("p") or 0)
        number = start // google.page_size + 1
        if google.fail_page and google.fail_page[0] == number:
            code = google.fail_page[1]
            self._answer(code, _google_error(code, _STATUS.get(code, "UNKNOWN"), "backend error"))
            return
        if google.garbage_page == number:
            self._answer(200, None, raw=b"<html>502 Bad Gateway</html>")
            return
        chunk = items[start : start + google.page_size]
        body: dict[str, Any] = dict(extra)
        if chunk:
            body[name] = chunk
        if start + google.page_size < len(items):
            body["nextPageToken"] = f"p{start + google.page_size}"
        self._answer(200, body)

    def _cloud_identity(self, query: dict[str, list[str]]) -> None:
        google = self.google
        if "cloud_identity" in google.fail:
            code = google.fail["cloud_identity"]
            message = "The caller does not have permission" if code == 403 else "backend error"
            self._answer(code, _google_error(code, _STATUS.get(code, "UNKNOWN"), message))
            return
        if not self._scope_ok(clients.CLOUD_IDENTITY_SCOPE):
            self._answer(
                403,
                _google_error(403, "PERMISSION_DENIED", "Request had insufficient scopes."),
            )
            return
        match = _QUERY.match((query.get("query") or [""])[0])
        if not match:
            self._answer(
                400, _google_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument.")
            )
            return
        found = google.transitive_groups(match.group(1))
        memberships = [
            {
                "group": f"groups/{abs(hash(group)) % 10**12:012d}",
                "groupKey": {"id": group},
                "displayName": group.split("@")[0],
                "roles": [{"role": "MEMBER"}],
                "relationType": relation,
                "labels": {"cloudidentity.googleapis.com/groups.discussion_forum": ""},
            }
            for group, relation in sorted(found.items())
        ]
        self._page(memberships, query, "memberships", {})

    def _directory(self, query: dict[str, list[str]]) -> None:
        google = self.google
        if "directory" in google.fail:
            code = google.fail["directory"]
            self._answer(code, _directory_error(code, "backendError", "Backend Error"))
            return
        if not self._scope_ok(clients.DIRECTORY_SCOPE):
            self._answer(
                403,
                _directory_error(403, "forbidden", "Not Authorized to access this resource/api"),
            )
            return
        key = (query.get("userKey") or [""])[0]
        groups = [
            {
                "kind": "admin#directory#group",
                "id": f"0{abs(hash(group)) % 10**15:015d}",
                "etag": '"etag"',
                "email": group,
                "name": group.split("@")[0],
                "directMembersCount": str(len(google.members[group])),
                "adminCreated": True,
            }
            for group in google.direct_groups(key)
        ]
        self._page(groups, query, "groups", {"kind": "admin#directory#groups", "etag": '"e"'})


class GoogleStandIn:
    """The server on a free loopback port, in a thread."""

    def __init__(self) -> None:
        self.google = Google()
        handler = type("Handler", (_Handler,), {"google": self.google})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.google.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

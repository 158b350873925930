"""A real OpenID Connect provider for the SSO tests: oidc-provider-mock 0.3.4, wrapped so that it
enforces PKCE (the mock itself ignores code_challenge). Run as a separate process:

    python -m apps.accounts.tests.oidc_idp --port 9400

The wrapper remembers `code -> code_challenge` when the authorize POST redirects with a code, and
on /oauth2/token answers 400 invalid_grant unless BASE64URL(SHA256(code_verifier)) matches.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
from urllib.parse import parse_qs, urlsplit

import oidc_provider_mock
from werkzeug.serving import make_server


class PKCEEnforcer:
    def __init__(self, app) -> None:
        self.app = app
        self.challenges: dict[str, tuple[str, str]] = {}

    def __call__(self, environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if method == "POST" and path == "/oauth2/token":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length)
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            recorded = self.challenges.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            if recorded is None or recorded[1] != "S256" or _s256(verifier) != recorded[0]:
                payload = json.dumps(
                    {"error": "invalid_grant", "error_description": "PKCE verification failed"}
                ).encode()
                start_response(
                    "400 Bad Request",
                    [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
                )
                return [payload]
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            return self.app(environ, start_response)
        if method == "POST" and path == "/oauth2/authorize":
            query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
            captured: dict = {}

            def capture(status, headers, exc_info=None):
                captured["status"], captured["headers"] = status, headers
                return lambda data: None

            # 0.3.4 calls start_response lazily: consume the body before reading headers.
            body = list(self.app(environ, capture))
            location = {k.lower(): v for k, v in captured["headers"]}.get("location", "")
            code = parse_qs(urlsplit(location).query).get("code", [""])[0]
            if code and query.get("code_challenge"):
                self.challenges[code] = (
                    query["code_challenge"],
                    query.get("code_challenge_method", "plain"),
                )
            start_response(captured["status"], captured["headers"])
            return body
        return self.app(environ, start_response)


def _s256(verifier: str) -> str:
    return (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = PKCEEnforcer(oidc_provider_mock.app())
    make_server("127.0.0.1", args.port, app, threaded=True).serve_forever()


if __name__ == "__main__":
    main()

"""The gunicorn worker class of the web role: uvicorn's, without its proxy-header handling.

uvicorn rewrites the client address (and scheme) from `X-Forwarded-For` / `X-Forwarded-Proto`
whenever the socket peer is in gunicorn's `forwarded_allow_ips` (127.0.0.1 by default), before
Django sees the request: a client on the same host, or a sidecar, could then name any address
it liked and get a fresh rate-limit bucket and a false audit IP. One component decides who the
client is, `apps.core.middleware.ClientIPMiddleware` (from `TRUSTED_PROXY_COUNT`), and one
decides the scheme, Django's `SECURE_PROXY_SSL_HEADER`; so the server passes the socket peer
through untouched, whatever `--forwarded-allow-ips` or `FORWARDED_ALLOW_IPS` say.

Kept apart from `autoglue.asgi` so gunicorn's master can import it without setting up Django.
"""

from __future__ import annotations

from typing import Any, ClassVar

from uvicorn_worker import UvicornWorker as _UvicornWorker


class UvicornWorker(_UvicornWorker):
    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {
        **_UvicornWorker.CONFIG_KWARGS,
        "proxy_headers": False,
    }

"""A loopback HTTP proxy in front of moto that counts Route 53 calls by operation and can answer
the next N calls of an operation with Route 53's throttling error, as AWS does under load.

It works at the network boundary (boto3 talks HTTP to it exactly as to AWS), so nothing in
boto3 or in our code is patched. Used by the reconciler tests and benchmarks/dns_sync.py.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

THROTTLE_BODY = (
    b'<?xml version="1.0"?>\n<ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">'
    b"<Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error>"
    b"<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
)


def operation(method: str, path: str) -> str:
    """The Route 53 operation a REST request is (only the ones Autoglue makes are named)."""
    path = path.split("?", 1)[0].rstrip("/")
    if path.endswith("/rrset"):
        return "ChangeResourceRecordSets" if method == "POST" else "ListResourceRecordSets"
    if path.endswith("/hostedzonesbyname"):
        return "ListHostedZonesByName"
    if "/hostedzone/" in path and method == "GET":
        return "GetHostedZone"
    return f"{method} {path}"


class Route53Proxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.calls: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        # The access key ids requests were signed with (from the SigV4 Authorization header).
        self.access_keys: set[str] = set()
        # Time spent waiting for the upstream (moto), to tell its cost from ours.
        self.upstream_seconds = 0.0
        self._throttle: Counter[str] = Counter()
        self._errors: dict[str, list[bytes]] = {}
        self._lock = threading.Lock()
        self._session = requests.Session()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                name = operation(self.command, self.path)
                auth = self.headers.get("Authorization", "")
                with proxy._lock:
                    if "Credential=" in auth:
                        proxy.access_keys.add(auth.split("Credential=", 1)[1].split("/", 1)[0])
                    proxy.calls[name] += 1
                    throttle = proxy._throttle[name] > 0
                    if throttle:
                        proxy._throttle[name] -= 1
                        proxy.throttled[name] += 1
                    canned = proxy._errors.get(name, [])
                    error_body = canned.pop(0) if canned and not throttle else None
                if throttle or error_body is not None:
                    body_out = THROTTLE_BODY if throttle else error_body
                    self.send_response(400)
                    self.send_header("Content-Type", "text/xml")
                    self.send_header("Content-Length", str(len(body_out)))
                    self.end_headers()
                    self.wfile.write(body_out)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                started = time.perf_counter()
                answer = proxy._session.request(
                    self.command,
                    proxy.upstream + self.path,
                    data=body,
                    headers=headers,
                    timeout=300,
                )
                with proxy._lock:
                    proxy.upstream_seconds += time.perf_counter() - started
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in (
                        "content-length",
                        "transfer-encoding",
                        "connection",
                        "content-encoding",
                    ):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_DELETE = do_PUT = _handle  # noqa: N815 - http.server's names

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def throttle(self, name: str, times: int) -> None:
        """Answer the next `times` calls of operation `name` with HTTP 400 Throttling."""
        with self._lock:
            self._throttle[name] += times

    def fail(self, name: str, code: str, message: str) -> None:
        """Answer the next call of operation `name` with a (non-retried) Route 53 error."""
        body = (
            '<?xml version="1.0"?>\n<ErrorResponse xmlns="https://route53.amazonaws.com/doc/'
            f'2013-04-01/"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}'
            "</Message></Error><RequestId>0</RequestId></ErrorResponse>"
        ).encode()
        with self._lock:
            self._errors.setdefault(name, []).append(body)

    def reset_counts(self) -> None:
        with self._lock:
            self.calls.clear()
            self.throttled.clear()
            self.upstream_seconds = 0.0

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

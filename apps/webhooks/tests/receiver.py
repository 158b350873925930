"""A webhook receiver on loopback, as an operator would write one: it verifies each request with
the `standardwebhooks` library and de-duplicates by `webhook-id`. Its behaviour can be switched
to fail on purpose (answer 500, hang past the timeout, trickle the body, redirect)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Receiver:
    url: str
    secrets: list[str] = field(default_factory=list)
    # "ok", "500", "hang", "slow_body", "slow_headers", "nul_body", "redirect", "verify_only_old"
    mode: str = "ok"
    delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    seen_ids: list[str] = field(default_factory=list)
    unique_ids: set[str] = field(default_factory=set)
    bad_signatures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def verified_by(self, secret: str, request: dict[str, Any]) -> bool:
        try:
            Webhook(secret).verify(request["body"], request["headers"])
        except WebhookVerificationError:
            return False
        return True


class _Handler(BaseHTTPRequestHandler):
    receiver: Receiver

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        return  # quiet: the test reads `receiver.requests`

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        headers = {key.lower(): value for key, value in self.headers.items()}
        record = {"body": body, "headers": headers, "path": self.path}
        receiver = self.receiver
        mode = receiver.mode
        with receiver.lock:
            receiver.requests.append(record)
        time.sleep(receiver.delay + (5 if mode == "hang" else 0))
        if not any(receiver.verified_by(secret, record) for secret in receiver.secrets):
            with receiver.lock:
                receiver.bad_signatures += 1
            self._answer(401, b"bad signature")
        elif mode == "500":
            self._answer(500, b"x" * 5000)
        elif mode == "redirect":
            self._answer(302, b"", location=receiver.url + "redirected")
        else:
            with receiver.lock:
                receiver.seen_ids.append(headers["webhook-id"])
                receiver.unique_ids.add(headers["webhook-id"])
            if mode == "slow_body":
                self._trickle()
            elif mode == "slow_headers":
                self._trickle_headers()
            elif mode == "nul_body":
                self._answer(200, b"ok\x00\xff\xfe")
            else:
                self._answer(204, b"")

    def _trickle(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "100")
        self.end_headers()
        for _ in range(100):
            self.wfile.write(b"s")
            self.wfile.flush()
            time.sleep(0.1)

    def _trickle_headers(self) -> None:
        # Each header line arrives well within a per-read timeout; all of them take 4 s.
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        for index in range(40):
            self.wfile.write(f"X-Slow-{index}: 1\r\n".encode())
            self.wfile.flush()
            time.sleep(0.1)
        self.wfile.write(b"Content-Length: 0\r\n\r\n")

    def _answer(self, status: int, body: bytes, location: str = "") -> None:
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            self.wfile.write(body)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    return type("Handler", (_Handler,), {"receiver": receiver})


@contextlib.contextmanager
def receiver_running(
    secrets: list[str] | None = None, host: str = "127.0.0.1"
) -> Iterator[Receiver]:
    server = ThreadingHTTPServer((host, 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    receiver = Receiver(url=f"http://{host}:{port}/hook/", secrets=list(secrets or []))
    server.RequestHandlerClass = _handler(receiver)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]

"""The API conventions every endpoint inherits: error bodies, content types, limits, headers."""

import json
import logging
import socket
import time
from urllib.parse import urlparse

import pytest
from django.test import Client

from apps.core.logging import JSONFormatter, RequestIDFilter

pytestmark = [pytest.mark.django_db, pytest.mark.urls("apps.core.tests.urls")]

SECURITY_HEADERS = (
    "X-Content-Type-Options",
    "X-Frame-Options",
    "Referrer-Policy",
    "Content-Security-Policy",
    "Permissions-Policy",
    "X-Request-ID",
)


def assert_error_body(response, status, code):
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    return body


def test_healthz_answers_the_contract_shape_with_and_without_trailing_slash(anon):
    for url in ("/api/v1/healthz", "/api/v1/healthz/"):
        response = anon.get(url)
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}


def test_readyz_reports_database_and_broker_ok(anon):
    response = anon.get("/api/v1/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "ok", "queues": "ok"},
    }


def test_readyz_is_503_naming_the_broker_when_it_is_unreachable(anon, settings):
    from autoglue.celery import app

    original = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    try:
        response = anon.get("/api/v1/readyz")
    finally:
        app.conf.broker_url = original
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "unavailable"}


def test_readyz_is_503_naming_the_database_within_the_probe_timeout_when_it_never_answers(anon):
    """readyz connects on a session of its own with a short connect timeout: a PostgreSQL that
    accepts the TCP connection and then says nothing fails the check before the probe (4 s)
    gives up."""
    from django.db import connection

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        original = connection.settings_dict["HOST"], connection.settings_dict["PORT"]
        connection.settings_dict["HOST"] = "127.0.0.1"
        connection.settings_dict["PORT"] = str(silent.getsockname()[1])
        started = time.monotonic()
        try:
            response = anon.get("/api/v1/readyz")
        finally:
            connection.settings_dict["HOST"], connection.settings_dict["PORT"] = original
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "unavailable", "broker": "ok"}
    assert 1.5 < elapsed < 4, elapsed


def test_version_has_every_contract_field(anon):
    body = anon.get("/api/v1/version").json()
    for field in (
        "version",
        "commit",
        "built",
        "builtBy",
        "go",
        "goOS",
        "goArch",
        "vcs",
        "revision",
        "commitTime",
        "modified",
    ):
        assert field in body
    assert body["version"] == "0.1.0"
    assert isinstance(body["modified"], bool)


def test_a_body_that_is_not_json_is_415(anon):
    response = anon.generic("POST", "/api/v1/test/echo", b"name=x", content_type="text/plain")
    assert_error_body(response, 415, "unsupported_media_type")


def test_json_with_a_charset_parameter_is_accepted(anon):
    response = anon.generic(
        "POST",
        "/api/v1/test/echo",
        b'{"name": "x"}',
        content_type="application/json; charset=utf-8",
    )
    assert response.status_code == 201
    assert response.json() == {"name": "x"}


def test_a_validation_error_names_the_field_in_the_contract_body(anon):
    response = anon.post("/api/v1/test/echo", {"size": 0}, format="json")
    body = assert_error_body(response, 400, "validation_error")
    assert "name: This field is required." in body["message"]
    assert "size:" in body["message"]
    assert set(body["fields"]) == {"name", "size"}


def test_nested_validation_errors_name_the_item(anon):
    response = anon.post(
        "/api/v1/test/echo", {"name": "x", "tags": ["ok", "toolong"]}, format="json"
    )
    body = assert_error_body(response, 400, "validation_error")
    assert body["message"].startswith("tags.1:") or body["message"].startswith("tags[1]")


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"\xff\xfe\x00garbage",
        b"[]",
        b"null",
        b'"just a string"',
        b'{"name": {"deep": 1}}',
        b'{"name": "x", "size": 1e309}',
        b'{"name": "x", "size": "NaN"}',
    ],
)
def test_malformed_json_is_a_4xx_with_the_contract_body_never_a_500(anon, raw):
    response = anon.generic("POST", "/api/v1/test/echo", raw, content_type="application/json")
    assert 400 <= response.status_code < 500
    assert set(response.json()) >= {"code", "message"}


def test_a_nul_character_anywhere_in_a_json_body_is_a_400(anon):
    for raw in (
        b'{"name": "a\\u0000b"}',
        b'{"name": "x", "tags": ["\\u0000"]}',
        b'{"na\\u0000me": "x"}',
    ):
        response = anon.generic("POST", "/api/v1/test/echo", raw, content_type="application/json")
        assert_error_body(response, 400, "invalid_json")
        assert "NUL" in response.json()["message"]


def test_a_value_the_database_cannot_compare_is_a_400_not_a_500(anon):
    response = anon.get("/api/v1/test/search", {"q": "a\x00b"})
    assert_error_body(response, 400, "invalid_input")


def test_an_unknown_api_path_is_a_json_404(anon):
    assert_error_body(anon.get("/api/v1/no-such-thing"), 404, "not_found")
    assert_error_body(anon.get("/api/nothing/here"), 404, "not_found")


def test_a_wrong_method_is_a_json_405(anon):
    assert_error_body(anon.post("/api/v1/healthz", {}, format="json"), 405, "method_not_allowed")


def test_an_unexpected_error_is_a_bare_json_500_and_is_logged(anon, caplog):
    with caplog.at_level(logging.ERROR):
        response = anon.get("/api/v1/test/boom")
    body = assert_error_body(response, 500, "internal_error")
    assert "CANARY" not in json.dumps(body)
    assert any(r.exc_info and "CANARY-internal" in str(r.exc_info[1]) for r in caplog.records)


def test_a_crash_outside_drf_still_answers_json_under_api():
    client = Client(raise_request_exception=False)
    response = client.get("/api/v1/test/plain-boom")
    assert_error_body(response, 500, "internal_error")
    assert b"CANARY" not in response.content


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("get", "/api/v1/no-such-thing", 404),
        ("post", "/api/v1/healthz", 405),
        ("get", "/api/v1/test/boom", 500),
        ("post", "/api/v1/test/echo", 400),
    ],
)
def test_security_headers_are_on_error_responses(anon, method, path, status):
    response = (
        getattr(anon, method)(path, {}, format="json") if method == "post" else anon.get(path)
    )
    assert response.status_code == status
    for header in SECURITY_HEADERS:
        assert header in response, header
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_hsts_is_sent_on_https_errors_outside_development(anon):
    response = anon.get("/api/v1/no-such-thing", secure=True)
    assert response.status_code == 404
    assert "max-age=63072000" in response["Strict-Transport-Security"]


def test_html_pages_get_the_console_csp_and_json_gets_a_closed_one(anon):
    assert anon.get("/api/v1/healthz")["Content-Security-Policy"].startswith("default-src 'none'")
    page = Client().get("/admin/login/")
    assert page.status_code == 200
    assert "script-src 'self'" in page["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in page["Content-Security-Policy"]


def test_a_request_id_is_echoed_and_lands_in_the_access_log(anon):
    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))

    handler = Collect()
    handler.addFilter(RequestIDFilter())
    handler.setFormatter(JSONFormatter())
    access = logging.getLogger("autoglue.access")
    access.addHandler(handler)
    try:
        response = anon.get("/api/v1/healthz", HTTP_X_REQUEST_ID="trace-abc.123")
    finally:
        access.removeHandler(handler)
    assert response["X-Request-ID"] == "trace-abc.123"
    lines = [json.loads(line) for line in records]
    assert any(
        line["request_id"] == "trace-abc.123"
        and line["event"] == "http_request"
        and line["status"] == 200
        and line["path"] == "/api/v1/healthz"
        for line in lines
    )


def test_a_request_id_that_could_forge_log_lines_is_replaced(anon):
    response = anon.get("/api/v1/healthz", HTTP_X_REQUEST_ID="evil\ninjected line")
    assert response["X-Request-ID"] != "evil\ninjected line"
    assert len(response["X-Request-ID"]) == 32


def test_requests_without_an_id_get_a_fresh_one_each(anon):
    first = anon.get("/api/v1/healthz")["X-Request-ID"]
    second = anon.get("/api/v1/healthz")["X-Request-ID"]
    assert first != second


class TestRateLimit:
    def test_the_request_over_the_limit_is_429_with_retry_after(self, anon, settings):
        settings.RATE_LIMIT = "3/m"
        statuses = [anon.get("/api/v1/version").status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        response = anon.get("/api/v1/version")
        assert_error_body(response, 429, "rate_limited")
        assert 1 <= int(response["Retry-After"]) <= 60
        for header in SECURITY_HEADERS:
            assert header in response

    def test_a_forged_forwarded_for_opens_no_new_bucket_without_trusted_proxies(
        self, anon, settings
    ):
        settings.RATE_LIMIT = "2/m"
        settings.TRUSTED_PROXY_COUNT = 0
        anon.get("/api/v1/version")
        anon.get("/api/v1/version")
        for forged in ("1.2.3.4", "5.6.7.8, 9.9.9.9"):
            assert anon.get("/api/v1/version", HTTP_X_FORWARDED_FOR=forged).status_code == 429

    def test_behind_one_proxy_only_the_address_it_appended_counts(self, anon, settings):
        settings.RATE_LIMIT = "2/m"
        settings.TRUSTED_PROXY_COUNT = 1
        real = "203.0.113.5"
        anon.get("/api/v1/version", HTTP_X_FORWARDED_FOR=real)
        anon.get("/api/v1/version", HTTP_X_FORWARDED_FOR=real)
        spoofed = f"6.6.6.6, {real}"
        assert anon.get("/api/v1/version", HTTP_X_FORWARDED_FOR=spoofed).status_code == 429
        # A different client behind the same proxy has its own bucket.
        assert anon.get("/api/v1/version", HTTP_X_FORWARDED_FOR="198.51.100.7").status_code == 200

    def test_a_header_shorter_than_the_proxy_chain_is_not_believed(self, anon, settings):
        """Two proxies trusted but one entry: the client may have written it, so the socket
        peer counts and a new forged address each time opens no new bucket."""
        settings.RATE_LIMIT = "2/m"
        settings.TRUSTED_PROXY_COUNT = 2
        codes = [
            anon.get("/api/v1/version", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code
            for n in range(1, 4)
        ]
        assert codes == [200, 200, 429]

    def test_health_probes_are_never_limited(self, anon, settings):
        settings.RATE_LIMIT = "1/m"
        assert [anon.get("/api/v1/healthz").status_code for _ in range(3)] == [200, 200, 200]


class TestCORS:
    def test_an_allowed_origin_gets_cors_headers_and_the_contract_headers(self, anon, settings):
        settings.CORS_ALLOWED_ORIGINS = ["https://console.example.com"]
        response = anon.options(
            "/api/v1/version",
            HTTP_ORIGIN="https://console.example.com",
            HTTP_ACCESS_CONTROL_REQUEST_METHOD="PATCH",
            HTTP_ACCESS_CONTROL_REQUEST_HEADERS="x-org-id, x-org-key, x-org-secret",
        )
        assert response["Access-Control-Allow-Origin"] == "https://console.example.com"
        allowed = response["Access-Control-Allow-Headers"].lower()
        for header in ("x-org-id", "x-api-key", "x-org-key", "x-org-secret", "authorization"):
            assert header in allowed

    def test_other_origins_and_null_get_no_cors_headers(self, anon, settings):
        settings.CORS_ALLOWED_ORIGINS = ["https://console.example.com"]
        for origin in ("https://evil.example.com", "null", "https://console.example.com.evil.io"):
            response = anon.get("/api/v1/version", HTTP_ORIGIN=origin)
            assert "Access-Control-Allow-Origin" not in response


def test_the_openapi_schema_and_swagger_ui_are_served(anon):
    schema = anon.get("/api/v1/openapi.json")
    assert schema.status_code == 200
    document = schema.json()
    assert document["openapi"].startswith("3.")
    assert "/api/v1/healthz" in document["paths"]
    docs = Client().get("/api/v1/docs")
    assert docs.status_code == 200
    assert docs["Content-Type"].startswith("text/html")


@pytest.mark.django_db(transaction=True)
def test_a_body_over_10_mib_is_413_before_the_body_is_sent(live_server):
    url = urlparse(live_server.url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/test/echo HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nContent-Length: 10485761\r\n\r\n"
        )
        # Not one byte of the body is sent: the answer must come from the headers alone.
        raw = b""
        while b"\r\n\r\n" not in raw or not raw.rstrip().endswith(b"}"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert json.loads(body)["code"] == "payload_too_large"
    assert b"X-Request-ID" in head


def test_a_body_of_exactly_10_mib_is_not_refused_for_its_size(anon):
    payload = b'{"name": "x", "pad": "' + b"a" * (10 * 1024 * 1024 - 30) + b'"}'
    assert len(payload) <= 10 * 1024 * 1024
    response = anon.generic("POST", "/api/v1/test/echo", payload, content_type="application/json")
    assert response.status_code == 201

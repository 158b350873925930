"""The console's front door: Google Workspace first, a throttled break-glass password beside
it, sessions that end, and a CSP that lets the Google button reach the identity provider."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.accounts.tests.support import console_google
from apps.console.tests.support import PASSWORD
from tests.live import free_port

GOOGLE = console_google("https://idp.example:8443/issuer")


def _sign_in(email: str, password: str, ip: str = "203.0.113.7"):
    return Client(REMOTE_ADDR=ip).post(
        "/admin/login/?next=/admin/", {"username": email, "password": password}
    )


def test_the_login_page_offers_google_and_lets_its_form_reach_the_provider(db, settings):
    settings.SOCIALACCOUNT_PROVIDERS = GOOGLE
    response = Client().get("/admin/login/")
    assert b"Sign in with Google" in response.content
    assert b'action="/accounts/oidc/google/login/?next=%2Fadmin%2F"' in response.content
    policy = response["Content-Security-Policy"]
    assert "form-action 'self' https://idp.example:8443;" in policy
    assert "script-src 'self';" in policy


def test_pages_other_than_sign_in_keep_form_action_to_self(console, settings):
    settings.SOCIALACCOUNT_PROVIDERS = GOOGLE
    assert "form-action 'self';" in console.get("/admin/")["Content-Security-Policy"]


def test_a_provider_url_cannot_smuggle_a_directive_into_the_policy(db, settings):
    settings.SOCIALACCOUNT_PROVIDERS = {
        "openid_connect": {
            "APPS": [
                {
                    **GOOGLE["openid_connect"]["APPS"][0],
                    "settings": {"server_url": "https://evil.example; script-src *"},
                }
            ]
        }
    }
    policy = Client().get("/admin/login/")["Content-Security-Policy"]
    assert "evil" not in policy and "script-src 'self'" in policy


def test_the_break_glass_password_signs_a_platform_admin_in(platform_admin):
    response = _sign_in(platform_admin.primary_email, PASSWORD)
    assert response.status_code == 302 and response["Location"] == "/admin/"


def test_the_break_glass_password_works_while_the_identity_provider_is_unreachable(
    platform_admin, settings
):
    # Nothing listens on the port: Google sign-in cannot start, the password door still opens.
    settings.SOCIALACCOUNT_PROVIDERS = console_google(f"http://127.0.0.1:{free_port()}")
    assert Client().post("/accounts/oidc/google/login/").status_code == 503

    response = _sign_in(platform_admin.primary_email, PASSWORD)

    assert response.status_code == 302 and response["Location"] == "/admin/"


def test_an_account_is_locked_after_five_wrong_passwords_even_with_the_right_one(
    platform_admin, settings
):
    settings.CONSOLE_LOGIN_MAX_FAILURES_PER_ACCOUNT = 5
    for n in range(5):
        # From different addresses: the account's own count is what stops it.
        assert (
            _sign_in(platform_admin.primary_email, "wrong", ip=f"198.51.100.{n}").status_code == 200
        )
    response = _sign_in(platform_admin.primary_email, PASSWORD, ip="198.51.100.99")
    assert response.status_code == 429
    assert b"Too many failed sign-in attempts" in response.content


def test_an_address_is_locked_after_too_many_failures_across_accounts(platform_admin, settings):
    settings.CONSOLE_LOGIN_MAX_FAILURES_PER_IP = 3
    for n in range(3):
        _sign_in(f"guess{n}@autoglue.example", "wrong", ip="192.0.2.1")
    assert _sign_in(platform_admin.primary_email, PASSWORD, ip="192.0.2.1").status_code == 429
    assert _sign_in(platform_admin.primary_email, PASSWORD, ip="192.0.2.2").status_code == 302


def test_a_correct_password_clears_the_accounts_failures(platform_admin, settings):
    settings.CONSOLE_LOGIN_MAX_FAILURES_PER_ACCOUNT = 3
    for _ in range(2):
        _sign_in(platform_admin.primary_email, "wrong", ip="198.51.100.1")
    assert _sign_in(platform_admin.primary_email, PASSWORD, ip="198.51.100.2").status_code == 302
    for _ in range(2):
        _sign_in(platform_admin.primary_email, "wrong", ip="198.51.100.3")
    assert _sign_in(platform_admin.primary_email, PASSWORD, ip="198.51.100.4").status_code == 302


def test_an_organization_member_cannot_use_the_password_door(member):
    # Members may use the console (their organizations only), but sign in with Google.
    member.set_password(PASSWORD)
    member.save()
    response = _sign_in(member.primary_email, PASSWORD)
    assert response.status_code == 200
    assert "_auth_user_id" not in response.wsgi_request.session


@pytest.mark.parametrize("seconds", [3600, 8 * 3600])
def test_a_console_session_lasts_as_long_as_the_setting_says(platform_admin, settings, seconds):
    settings.SESSION_COOKIE_AGE = seconds
    client = Client()
    client.post("/admin/login/", {"username": platform_admin.primary_email, "password": PASSWORD})
    assert client.session.get_expiry_age() == seconds
    assert client.cookies["sessionid"]["max-age"] == seconds


def test_the_home_page_leads_to_the_console_and_view_site_to_the_api_docs(console):
    assert Client().get("/")["Location"] == "/admin/"
    page = console.get("/admin/").content.decode()
    assert '<a href="/api/v1/docs" id="view-site">' in page
    assert console.get("/api/v1/docs").status_code == 200


def test_the_api_docs_page_has_no_inline_script(client):
    page = client.get("/api/v1/docs")
    body = page.content.decode()
    assert "<script>" not in body
    assert 'src="/api/v1/docs?script="' in body
    script = client.get("/api/v1/docs?script=")
    assert script["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle" in script.content


def test_allauths_own_sign_in_pages_also_let_the_google_form_reach_the_provider(db, settings):
    settings.SOCIALACCOUNT_PROVIDERS = GOOGLE
    response = Client().get("/accounts/login/")
    assert response.status_code == 200
    assert "form-action 'self' https://idp.example:8443;" in response["Content-Security-Policy"]


def test_the_providers_continue_page_has_the_consoles_look_and_keeps_its_post(db, settings):
    settings.SOCIALACCOUNT_PROVIDERS = GOOGLE
    client = Client(enforce_csrf_checks=True)
    response = client.get("/accounts/oidc/google/login/?next=/admin/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "Autoglue console" in page and "console/console.css" in page
    assert 'id="sso-continue"' in page and 'method="post"' in page
    assert "csrfmiddlewaretoken" in page
    assert "Sign In Via" not in page
    # The GET itself started nothing: no redirect to the provider, no state stored.
    assert "Location" not in response
    # Without the page's CSRF token the POST is refused, so another site cannot start it.
    assert client.post("/accounts/oidc/google/login/?next=/admin/").status_code == 403


@pytest.mark.parametrize(
    ("path", "heading"),
    [
        ("/accounts/3rdparty/login/cancelled/", 'id="sso-cancelled"'),
        ("/accounts/3rdparty/login/error/", 'id="sso-error"'),
    ],
)
def test_the_providers_cancelled_and_error_pages_have_the_consoles_look(db, path, heading):
    response = Client().get(path)
    page = response.content.decode()
    assert heading in page
    assert "Autoglue console" in page and "console/console.css" in page
    assert 'href="/admin/login/"' in page

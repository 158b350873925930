"""Browser tests: Debian's Chromium, driven by Playwright's Python API, against the web role as
deployed (gunicorn + uvicorn, production settings and so the production CSP) on the test
database, and the real OpenID Connect provider process for Google sign-in.

Screenshots land in `.artifacts/browser/<test>/` (ignored by git) for people to look at.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher

from apps.accounts.models import User
from apps.accounts.tests.support import idp_url  # noqa: F401 - the real OIDC provider
from apps.console.tests.support import PASSWORD
from tests import live

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = live.ROOT / ".artifacts" / "browser"
GOOGLE_CLIENT_ID = "console-client"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A developer machine without Chromium skips these; CI (.ci/run installs it) never does.
    if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
        for item in items:
            if "tests/browser" in str(item.fspath):
                item.add_marker(pytest.mark.skip(reason="Debian chromium is not installed"))


@pytest.fixture(scope="session")
def web_env(django_db_setup, django_db_blocker, idp_url) -> dict[str, str]:  # noqa: F811
    """Production settings on the test database, Google sign-in pointed at the provider
    process; the static files collected once, as a deployment serves them (manifest storage)."""
    with django_db_blocker.unblock():
        env = live.process_env(
            GOOGLE_CLIENT_ID=GOOGLE_CLIENT_ID,
            GOOGLE_CLIENT_SECRET="CANARY-console-client-secret",
            GOOGLE_OIDC_ISSUER=idp_url,
            GOOGLE_WORKSPACE_DOMAINS="acme.example",
            JOB_LOG_STREAM_POLL_SECONDS="0.2",
        )
    subprocess.run(  # noqa: S603 - our own manage.py
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"],
        cwd=live.ROOT,
        env=env,
        check=True,
    )
    return env


@pytest.fixture(scope="module")
def console_url(web_env, tmp_path_factory) -> Iterator[str]:
    """The web role (gunicorn + uvicorn) for one test module, stopped after it."""
    web, url = live.start_web(tmp_path_factory.mktemp("browser-web"), web_env, workers=1)
    try:
        yield url
    finally:
        web.stop()


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    """Chromium for one test module. Playwright's sync API keeps an event loop in this thread
    while it is open, so Django would refuse the tests' own (blocking, between browser steps)
    ORM calls: they are allowed for the module's lifetime only, and the loop is gone before
    any other module's tests run."""
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class Shots:
    """Numbered screenshots of one test, under .artifacts/browser/<test>/."""

    def __init__(self, page, name: str) -> None:  # type: ignore[no-untyped-def]
        self.page = page
        self.folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob("*.png"):
            old.unlink()
        self.count = 0

    def __call__(self, label: str, *, full_page: bool = True) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{label}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture
def page(browser, console_url, request, transactional_db):  # type: ignore[no-untyped-def]
    """A fresh browser context on the console; CSP violations reported by Chromium are
    collected in `page.csp_violations`."""
    context = browser.new_context(base_url=console_url, viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(20_000)
    tab.csp_violations = []
    tab.on(
        "console",
        lambda message: (
            tab.csp_violations.append(message.text)
            if "Content Security Policy" in message.text
            else None
        ),
    )
    tab.shots = Shots(tab, request.node.name)
    yield tab
    tab.shots("last")
    context.close()


@pytest.fixture
def platform_admin(transactional_db) -> User:
    """Rita, a platform admin with a break-glass password the web process can check (its
    hashers are production's, not the test settings' MD5)."""
    user = User.objects.create_user("rita@autoglue.example", is_admin=True)
    user.password = PBKDF2PasswordHasher().encode(PASSWORD, "browsertestsalt", iterations=1000)
    user.save(update_fields=["password"])
    return user

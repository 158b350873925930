"""Steps the browser tests share."""

from __future__ import annotations

import re

from apps.accounts.models import User
from apps.console.tests.support import PASSWORD

__all__ = ["PASSWORD", "sign_in_with_password"]


def sign_in_with_password(page, user: User) -> None:  # type: ignore[no-untyped-def]
    page.goto("/admin/login/")
    if not page.locator("#login-form").is_visible():
        page.locator("summary", has_text="Break-glass").click()
    page.fill("#id_username", user.primary_email)
    page.fill("#id_password", PASSWORD)
    page.locator("#login-form input[type=submit]").click()
    page.wait_for_url(re.compile(r".*/admin/$"))

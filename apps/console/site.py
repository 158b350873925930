"""The console's AdminSite: Autoglue branding, the dashboard as its index, and a break-glass
password sign-in with throttling beside the Google Workspace button."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from apps.console import selectors
from apps.console.forms import ThrottledAdminAuthenticationForm
from apps.core.permissions import Perm
from apps.orgs.console_base import is_platform_admin, orgs_allowing


class ConsoleAdminSite(admin.AdminSite):
    """Installed as the default admin site by apps.console.apps.ConsoleAdminConfig."""

    site_header = "Autoglue console"
    site_title = "Autoglue console"
    index_title = "Dashboard"
    login_form = ThrottledAdminAuthenticationForm
    login_template = "admin/login.html"

    @property
    def site_url(self) -> str:  # type: ignore[override]
        # The people's page of an installation, besides this console, is the API reference.
        return "/api/v1/docs" if settings.API_DOCS_ENABLED else "/"

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        org_ids = None if is_platform_admin(request) else orgs_allowing(request, Perm.READ)
        context = {"dashboard": selectors.dashboard(org_ids=org_ids), **(extra_context or {})}
        return super().index(request, context)

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        response: HttpResponse = super().login(request, extra_context)
        if getattr(request, "console_login_throttled", False):
            response.status_code = 429
        return response

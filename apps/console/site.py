"""The console's AdminSite: Autoglue branding, the dashboard as its index, and a break-glass
password sign-in with throttling beside the Google Workspace button."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.http import urlencode

from apps.accounts import tokens
from apps.console import search, selectors
from apps.console.forms import ThrottledAdminAuthenticationForm
from apps.core.permissions import Perm
from apps.observability.selectors import queue_overview
from apps.orgs.console_base import console_roles, is_platform_admin, orgs_allowing

_View = TypeVar("_View", bound=Callable[..., HttpResponseBase])


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

    def admin_view(self, view: _View, cacheable: bool = False) -> _View:
        """Every console page, with one refusal up front: a NUL byte in the query string (a
        search, a filter, an autocomplete term) is a 400. PostgreSQL refuses NUL in text, so it
        would otherwise surface as a 500 from whichever query first uses the value."""
        inner = super().admin_view(view, cacheable)

        @wraps(inner)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if any(
                "\x00" in key or any("\x00" in value for value in values)
                for key, values in request.GET.lists()
            ):
                return HttpResponseBadRequest("NUL bytes are not allowed in the query string")
            return inner(request, *args, **kwargs)

        return cast("_View", wrapper)

    def get_urls(self) -> list[Any]:
        find = path("search/", self.admin_view(self.search_view), name="search")
        return [find, *super().get_urls()]

    def search_view(self, request: HttpRequest) -> HttpResponse:
        """The header's search box: one term across every kind of object (apps.console.search).
        A single match opens that object's page."""
        raw = request.GET.get("q", "")
        shown = tokens.redacted_key_text(raw)
        if shown is not None:
            # A pasted key with its secret: search again by its public form, so the secret
            # leaves the address bar and is never rendered back.
            return HttpResponseRedirect(f"{request.path}?{urlencode({'q': shown})}")
        term = search.search_term(raw)
        results = search.search(request=request, site=self, term=term) if term else []
        hits = [hit for result in results for hit in result.hits]
        if len(hits) == 1 and results[0].count == 1 and hits[0].url:
            return HttpResponseRedirect(hits[0].url)
        context = {
            **self.each_context(request),
            "title": f"Search: {raw.strip()}" if term else "Search",
            "query": raw.strip(),
            "results": results,
            "searched": bool(term),
            "min_length": search.MIN_TERM_LENGTH,
        }
        return TemplateResponse(request, "admin/console/search.html", context)

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        org_ids = None if is_platform_admin(request) else orgs_allowing(request, Perm.READ)
        context = {
            "dashboard": selectors.dashboard(org_ids=org_ids),
            # A fresh installation: nothing works until the signed-in person has an organization,
            # so the dashboard says so first and offers to create one (platform admins may).
            "first_run": not console_roles(request),
            # The job queues, as the metrics and readyz see them (platform admins: queues are
            # the installation's, not an organization's).
            "queues": queue_overview().queues if org_ids is None else [],
            **(extra_context or {}),
        }
        return super().index(request, context)

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        response: HttpResponse = super().login(request, extra_context)
        if getattr(request, "console_login_throttled", False):
            response.status_code = 429
        return response

"""URL map: the API under /api/v1, the admin console under /admin/ (where `/` leads)."""

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponseRedirect
from django.templatetags.static import static
from django.urls import URLPattern, URLResolver, include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerSplitView

from apps.accounts import oidc
from apps.accounts.views import RootJWKSView
from apps.core import handlers
from apps.observability.views import metrics_view

api_v1: list[URLPattern | URLResolver] = [
    path("", include("apps.core.urls")),
    path("", include("apps.accounts.urls")),
    path("", include("apps.orgs.urls")),
    path("", include("apps.infrastructure.urls")),
    path("", include("apps.clusters.urls")),
    path("", include("apps.dns.urls")),
    path("", include("apps.jobs.urls")),
    path("", include("apps.maintenance.urls")),
    path("", include("apps.audit.urls")),
    path("", include("apps.groupsync.urls")),
    path("", include("apps.webhooks.urls")),
]

if settings.API_DOCS_ENABLED:
    api_v1 += [
        re_path(r"^openapi\.json/?$", SpectacularJSONAPIView.as_view(), name="openapi-schema"),
        re_path(
            r"^docs/?$",
            # The split view serves its start-up script as a file of its own (`?script`), so
            # the page runs under the console's CSP (`script-src 'self'`, no inline script).
            SpectacularSwaggerSplitView.as_view(url_name="openapi-schema"),
            name="swagger-ui",
        ),
    ]


def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """Browsers ask for /favicon.ico on every page; it is a static file (cached by its hash)."""
    return HttpResponseRedirect(static("favicon.ico"))


urlpatterns = [
    path("favicon.ico", favicon, name="favicon"),
    # The console is the installation's home page for people.
    path("", RedirectView.as_view(url="/admin/", permanent=False), name="home"),
    re_path(r"^\.well-known/jwks\.json$", RootJWKSView.as_view(), name="jwks"),
    path("api/v1/", include(api_v1)),
    # Prometheus, with the bearer METRICS_TOKEN (docs/observability.md).
    re_path(r"^metrics/?$", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    # Console sign-in (Google Workspace through django-allauth); the OpenID Connect login and
    # callback are ours, ahead of allauth's own, so the ID token is verified strictly.
    path("accounts/oidc/<str:provider_id>/login/", oidc.login, name="openid_connect_login"),
    path(
        "accounts/oidc/<str:provider_id>/login/callback/",
        oidc.callback,
        name="openid_connect_callback",
    ),
    path("accounts/", include("allauth.urls")),
    re_path(r"^api/", handlers.api_not_found),
]

handler400 = "apps.core.handlers.bad_request"
handler404 = "apps.core.handlers.not_found"
handler500 = "apps.core.handlers.internal_error"

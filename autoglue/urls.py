"""URL map: the API under /api/v1, the admin console under /admin/ (where `/` leads)."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView

from apps.accounts.views import RootJWKSView
from apps.core import handlers

api_v1 = [
    path("", include("apps.core.urls")),
    path("", include("apps.accounts.urls")),
    path("", include("apps.orgs.urls")),
    path("", include("apps.infrastructure.urls")),
    path("", include("apps.clusters.urls")),
    path("", include("apps.dns.urls")),
    path("", include("apps.jobs.urls")),
]

if settings.API_DOCS_ENABLED:
    api_v1 += [
        re_path(r"^openapi\.json/?$", SpectacularJSONAPIView.as_view(), name="openapi-schema"),
        re_path(
            r"^docs/?$",
            SpectacularSwaggerView.as_view(url_name="openapi-schema"),
            name="swagger-ui",
        ),
    ]

urlpatterns = [
    # The console is the installation's home page for people.
    path("", RedirectView.as_view(url="/admin/", permanent=False), name="home"),
    re_path(r"^\.well-known/jwks\.json$", RootJWKSView.as_view(), name="jwks"),
    path("api/v1/", include(api_v1)),
    path("admin/", admin.site.urls),
    # Console sign-in (Google Workspace through django-allauth).
    path("accounts/", include("allauth.urls")),
    re_path(r"^api/", handlers.api_not_found),
]

handler400 = "apps.core.handlers.bad_request"
handler404 = "apps.core.handlers.not_found"
handler500 = "apps.core.handlers.internal_error"

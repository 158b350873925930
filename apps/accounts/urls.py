"""API routes of the accounts app (tags auth, me), mounted under /api/v1."""

from django.urls import re_path

from apps.accounts import views

urlpatterns = [
    re_path(r"^\.well-known/jwks\.json/?$", views.JWKSView.as_view(), name="jwks-api"),
    re_path(r"^auth/refresh/?$", views.RefreshView.as_view(), name="auth-refresh"),
    re_path(r"^auth/logout/?$", views.LogoutView.as_view(), name="auth-logout"),
    re_path(
        r"^auth/(?P<provider>[a-z0-9_-]+)/start/?$", views.SSOStartView.as_view(), name="auth-start"
    ),
    re_path(
        r"^auth/(?P<provider>[a-z0-9_-]+)/callback/?$",
        views.SSOCallbackView.as_view(),
        name="auth-callback",
    ),
    re_path(r"^me/?$", views.MeView.as_view(), name="me"),
    re_path(r"^me/api-keys/?$", views.MyAPIKeysView.as_view(), name="me-api-keys"),
    re_path(r"^me/api-keys/(?P<key_id>[^/]+)/?$", views.MyAPIKeyView.as_view(), name="me-api-key"),
]

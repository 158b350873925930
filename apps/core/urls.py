"""Routes of the core app, mounted under /api/v1. A trailing slash is tolerated everywhere."""

from django.urls import re_path

from apps.core import views

urlpatterns = [
    re_path(r"^healthz/?$", views.HealthView.as_view(), name="healthz"),
    re_path(r"^readyz/?$", views.ReadyView.as_view(), name="readyz"),
    re_path(r"^version/?$", views.VersionView.as_view(), name="version"),
]

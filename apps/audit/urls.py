"""Audit routes, mounted under /api/v1."""

from django.urls import re_path

from apps.audit import views
from apps.core.api.routers import APIRouter

router = APIRouter()
router.register("audit-entries", views.AuditEntryViewSet, basename="audit-entry")

urlpatterns = [
    re_path(r"^admin/audit/verify/?$", views.AuditVerifyView.as_view(), name="audit-verify"),
    *router.urls,
]

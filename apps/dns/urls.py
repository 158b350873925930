"""API routes of the dns app, mounted under /api/v1."""

from django.urls import re_path

from apps.core.api.routers import APIRouter
from apps.dns import views

router = APIRouter()
router.register("dns/domains", views.DomainViewSet, basename="dns-domain")
router.register("dns/records", views.RecordSetViewSet, basename="dns-record")
router.register("dns/plans", views.DNSPlanViewSet, basename="dns-plan")

urlpatterns = [
    re_path(
        r"^dns/settings/?$",
        views.DNSSettingsViewSet.as_view({"get": "show", "patch": "change"}),
        name="dns-settings",
    ),
    *router.urls,
]

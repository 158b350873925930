"""API routes of the groupsync app, mounted under /api/v1."""

from django.urls import re_path

from apps.core.api.routers import APIRouter
from apps.groupsync import views

router = APIRouter()
router.register("group-mappings", views.GroupRoleMappingViewSet, basename="group-mapping")

urlpatterns = [
    re_path(
        r"^group-sync/?$",
        views.GroupSyncSettingsViewSet.as_view({"get": "show", "patch": "change"}),
        name="group-sync",
    ),
    *router.urls,
]

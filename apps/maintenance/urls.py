"""Maintenance routes, mounted under /api/v1."""

from apps.core.api.routers import APIRouter
from apps.maintenance import views

router = APIRouter()
router.register("expiring-keys", views.ExpiringKeyViewSet, basename="expiring-key")

urlpatterns = router.urls

"""Webhook routes, mounted under /api/v1."""

from apps.core.api.routers import APIRouter
from apps.webhooks import views

router = APIRouter()
router.register("webhooks", views.WebhookEndpointViewSet, basename="webhook")

urlpatterns = router.urls

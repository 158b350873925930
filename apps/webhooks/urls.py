"""Webhook routes, mounted under /api/v1: an organization's (/webhooks) and the platform's own
(/admin/webhooks, beside the other platform-admin routes /admin/actions and /admin/archer)."""

from apps.core.api.routers import APIRouter
from apps.webhooks import views

router = APIRouter()
router.register("webhooks", views.WebhookEndpointViewSet, basename="webhook")
router.register("admin/webhooks", views.PlatformWebhookEndpointViewSet, basename="platform-webhook")

urlpatterns = router.urls

"""API routes of the infrastructure app, mounted under /api/v1."""

from apps.core.api.routers import APIRouter
from apps.infrastructure import views

router = APIRouter()
router.register("ssh", views.SSHKeyViewSet, basename="ssh-key")
router.register("servers", views.ServerViewSet, basename="server")
router.register("credentials", views.CredentialViewSet, basename="credential")
router.register("load-balancers", views.LoadBalancerViewSet, basename="load-balancer")

urlpatterns = router.urls

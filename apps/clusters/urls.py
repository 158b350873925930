"""API routes of the clusters app, mounted under /api/v1."""

from apps.clusters import views
from apps.core.api.routers import APIRouter

router = APIRouter()
router.register("labels", views.LabelViewSet, basename="label")
router.register("annotations", views.AnnotationViewSet, basename="annotation")
router.register("taints", views.TaintViewSet, basename="taint")
router.register("node-pools", views.NodePoolViewSet, basename="node-pool")
router.register(
    r"clusters/(?P<clusterID>[^/]+)/metadata",
    views.ClusterMetadataViewSet,
    basename="cluster-metadata",
)
router.register("clusters", views.ClusterViewSet, basename="cluster")
router.register("admin/actions", views.ActionViewSet, basename="action")

urlpatterns = router.urls

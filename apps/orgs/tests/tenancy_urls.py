"""The project's routes plus one throwaway tenant viewset, for the tenancy tests."""

from rest_framework import serializers

from apps.core.api.routers import APIRouter
from apps.core.api.viewsets import OrgScopedModelViewSet
from apps.orgs.models import Membership
from autoglue.urls import urlpatterns as project_urlpatterns


class ThingSerializer(serializers.ModelSerializer):
    class Meta:
        model = Membership
        fields = ["id", "role"]


class ThingViewSet(OrgScopedModelViewSet):
    """A stand-in tenant resource: memberships carry an `organization`, like every tenant row."""

    queryset = Membership.objects.all()
    serializer_class = ThingSerializer
    not_found_code = "thing_not_found"


router = APIRouter()
router.register("things", ThingViewSet, basename="thing")

from django.urls import include, path  # noqa: E402

urlpatterns = [path("api/v1/", include(router.urls)), *project_urlpatterns]

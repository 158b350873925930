"""Throwaway routes that exercise the API conventions before any real resource exists."""

from django.urls import include, path, re_path
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from autoglue.urls import urlpatterns as project_urlpatterns


class EchoSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=20)
    size = serializers.IntegerField(min_value=1, required=False)
    tags = serializers.ListField(child=serializers.CharField(max_length=3), required=False)


class EchoView(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    def post(self, request):
        serializer = EchoSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(serializer.validated_data, status=201)


class BoomView(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request):
        raise RuntimeError("CANARY-internal-detail that must not reach the client")


class SearchView(APIView):
    """Compares a query parameter in the database, as list filters do."""

    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request):
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT %s::text = 'x'", [request.query_params.get("q", "")])
            return Response({"match": cursor.fetchone()[0]})


def plain_boom(request):
    raise RuntimeError("CANARY-outside-drf")


test_api = [
    re_path(r"^echo/?$", EchoView.as_view()),
    re_path(r"^boom/?$", BoomView.as_view()),
    re_path(r"^search/?$", SearchView.as_view()),
    re_path(r"^plain-boom/?$", plain_boom),
]

urlpatterns = [path("api/v1/test/", include(test_api)), *project_urlpatterns]

handler400 = "apps.core.handlers.bad_request"
handler404 = "apps.core.handlers.not_found"
handler500 = "apps.core.handlers.internal_error"

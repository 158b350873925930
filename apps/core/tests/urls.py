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


# Nothing listens on port 1 of the loopback: real clients against a dependency that is down.
DEAD_PORT = 1
DEAD_DB_PASSWORD = "CANARY-db-password"  # noqa: S105 - a canary, grepped for in logs


def _redis_down() -> None:
    import redis

    redis.Redis(host="127.0.0.1", port=DEAD_PORT, socket_connect_timeout=1).get("x")


def _database_down() -> None:
    from django.db import connections

    default = connections["default"]
    settings_dict = {
        **default.settings_dict,
        "PORT": DEAD_PORT,
        "PASSWORD": DEAD_DB_PASSWORD,
        "OPTIONS": {**default.settings_dict["OPTIONS"], "connect_timeout": 1},
    }
    dead = type(default)(settings_dict, alias="dead")
    try:
        dead.cursor()
    finally:
        dead.close()


def _pool_full() -> None:
    """A real pool of one connection, taken: the next request for one times out (PoolTimeout,
    wrapped by Django as an OperationalError, as in a web process under a burst)."""
    from django.db import connections

    default = connections["default"]
    settings_dict = {
        **default.settings_dict,
        "CONN_MAX_AGE": 0,
        "OPTIONS": {
            **default.settings_dict["OPTIONS"],
            "pool": {"min_size": 0, "max_size": 1, "timeout": 0.2},
        },
    }
    holder = type(default)(settings_dict, alias="full-pool")
    waiter = type(default)(settings_dict, alias="full-pool")
    holder.ensure_connection()
    try:
        waiter.ensure_connection()
    finally:
        waiter.close()
        holder.close()
        holder.close_pool()


DOWN = {"redis": _redis_down, "database": _database_down, "pool": _pool_full}


class DependencyView(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request, dependency):
        DOWN[dependency]()
        return Response({})


def plain_dependency(request, dependency):
    DOWN[dependency]()


test_api = [
    re_path(r"^echo/?$", EchoView.as_view()),
    re_path(r"^boom/?$", BoomView.as_view()),
    re_path(r"^search/?$", SearchView.as_view()),
    re_path(r"^plain-boom/?$", plain_boom),
    re_path(r"^down/(?P<dependency>redis|database|pool)/?$", DependencyView.as_view()),
]

urlpatterns = [
    path("api/v1/test/", include(test_api)),
    re_path(r"^test-page/down/(?P<dependency>redis|database|pool)/?$", plain_dependency),
    *project_urlpatterns,
]

handler400 = "apps.core.handlers.bad_request"
handler404 = "apps.core.handlers.not_found"
handler500 = "apps.core.handlers.internal_error"

"""Meta endpoints: liveness, readiness and build information. Public, no authentication."""

from __future__ import annotations

import logging

from django.contrib.auth import get_user
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core import db_pool, health
from apps.core.version import version_info

logger = logging.getLogger(__name__)

# readyz's own connection attempt; the chart's probe gives the whole answer 4 s.
DATABASE_CONNECT_TIMEOUT_SECONDS = 2


class HealthView(APIView):
    """Liveness: the process answers. Deliberately touches no dependency."""

    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(
        operation_id="HealthCheck",
        tags=["Health"],
        responses=inline_serializer("HealthStatus", {"status": serializers.CharField()}),
    )
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


def _check_database() -> str:
    # On a short session of its own, never from the pool: with every pooled connection busy
    # (a burst), waiting for one would take DATABASE_POOL_TIMEOUT, longer than the probe waits,
    # and a busy pod reported unready sends its load to the others until none is ready.
    db_pool.database_answers(connect_timeout=DATABASE_CONNECT_TIMEOUT_SECONDS)
    return "ok"


def _check_broker() -> str:
    from autoglue.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
    return "ok"


def _signed_in(request: Request) -> bool:
    """A console session (readyz itself authenticates nobody: probes send no credential)."""
    # DRF replaced request.user with an anonymous one (no authenticators here): read the
    # session itself, which costs nothing when the probe sends no cookie.
    if not hasattr(request._request, "session"):
        return False
    return bool(get_user(request._request).is_authenticated)


class ReadyView(APIView):
    """Readiness: the database and the broker answer. 503 with the failing check otherwise.
    With both up, the advisory checks (a queue with work and no consumer) make the status
    `degraded`, still 200; their detail is shown to signed-in callers only."""

    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(
        operation_id="ReadinessCheck",
        tags=["Health"],
        responses={
            (200, "application/json"): inline_serializer(
                "ReadinessStatus",
                {"status": serializers.CharField(), "checks": serializers.DictField()},
            ),
            (503, "application/json"): inline_serializer(
                "ReadinessFailure",
                {"status": serializers.CharField(), "checks": serializers.DictField()},
            ),
        },
    )
    def get(self, request: Request) -> Response:
        checks = {}
        for name, check in (("database", _check_database), ("broker", _check_broker)):
            try:
                checks[name] = check()
            except Exception as exc:  # any failure of a dependency means "not ready"
                logger.warning("readiness check failed", extra={"check": name, "error": str(exc)})
                checks[name] = "unavailable"
        ok = all(value == "ok" for value in checks.values())
        degraded = False
        if ok and db_pool.pool_exhausted():
            # Reachable but busy: still ready, and said so. The advisory checks read through the
            # pool, so they would wait its timeout; they run again on the next probe.
            checks["database_pool"] = "exhausted"
            degraded = True
        elif ok:
            # Advisory checks (apps.core.health): named, but never a 503.
            for name, advisory in health.advisory_checks().items():
                try:
                    checks[name] = advisory()
                except Exception as exc:  # noqa: BLE001 - a check that fails says so, no more
                    logger.warning(
                        "readiness check failed", extra={"check": name, "error": str(exc)}
                    )
                    checks[name] = "unavailable"
                degraded = degraded or checks[name] != "ok"
                if checks[name] != "ok" and not _signed_in(request):
                    # Which queues lack a worker is for operators, not for anyone probing.
                    checks[name] = "degraded"
        status = "unavailable" if not ok else "degraded" if degraded else "ok"
        return Response({"status": status, "checks": checks}, status=200 if ok else 503)


class VersionView(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    @extend_schema(
        operation_id="Version",
        tags=["Meta"],
        responses=inline_serializer(
            "VersionResponse",
            {
                "version": serializers.CharField(),
                "commit": serializers.CharField(),
                "built": serializers.CharField(),
                "builtBy": serializers.CharField(),
                "go": serializers.CharField(),
                "goOS": serializers.CharField(),
                "goArch": serializers.CharField(),
                "vcs": serializers.CharField(),
                "revision": serializers.CharField(),
                "commitTime": serializers.CharField(),
                "modified": serializers.BooleanField(),
            },
        ),
    )
    def get(self, request: Request) -> Response:
        return Response(version_info())

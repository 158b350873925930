"""`GET /metrics` on the web's own port: every web worker's samples added up, plus the
scrape-time gauges. Needs `Authorization: Bearer <METRICS_TOKEN>`; with no token set the route
does not exist (404)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from apps.core import metrics_process
from apps.observability.collector import DatabaseCollector


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not metrics_process.enabled():
        return HttpResponse("not found\n", status=404, content_type="text/plain")
    if not metrics_process.authorized(request.headers.get("Authorization", "")):
        response = HttpResponse("unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body = generate_latest(metrics_process.registry(DatabaseCollector()))
    response = HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response

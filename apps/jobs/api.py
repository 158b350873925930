"""What the log routes of other apps share: query parsing, the paged body and the SSE stream.

The routes themselves live with their subjects (`/servers/{id}/logs` in infrastructure,
`/clusters/{id}/runs/{runID}/logs` in clusters), behind OrgScopedViewSet, and pass in a
`LogScope` already limited to the request's organization.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable
from typing import Any

from django.http.response import HttpResponseBase
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api.errors import bad_request
from apps.core.api.pagination import MAX_LIMIT
from apps.core.permissions import Perm
from apps.jobs.selectors import LogScope, job_logs_page
from apps.jobs.stream import sse_response
from apps.orgs.tenancy import tenant_recheck

LIMIT_DEFAULT = 200
# The lists' bound: the schema states one range for every `limit` (apps.core.api.schema).
LIMIT_MAX = MAX_LIMIT


class EventStreamNegotiation(BaseContentNegotiation):
    """The stream answers `text/event-stream` whatever the client's Accept says (errors before
    the stream starts are still JSON)."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> Any:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: Any = None
    ) -> Any:
        renderer = list(renderers)[0]
        return (renderer, renderer.media_type)


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"[0-9]{1,18}", raw.strip()):
        raise bad_request("invalid_" + name, f"{name}: must be an integer from {low} to {high}")
    value = int(raw)
    if not low <= value <= high:
        raise bad_request("invalid_" + name, f"{name}: must be an integer from {low} to {high}")
    return value


def log_cursor(request: Request) -> int:
    return int_param(request, "after", 0, 0, 2**62)


def logs_page_response(request: Request, scope: LogScope) -> Response:
    """200 `{items, next_cursor, done}` (`after` default 0, `limit` default 200, 1..1000)."""
    after = log_cursor(request)
    limit = int_param(request, "limit", LIMIT_DEFAULT, 1, LIMIT_MAX)
    return Response(job_logs_page(scope=scope, after=after, limit=limit))


def logs_stream_response(request: Request, scope: LogScope) -> HttpResponseBase:
    """The SSE stream; it ends once the caller's key, token or role no longer allows reading
    logs (checked again every JOB_LOG_STREAM_REAUTHORIZE_SECONDS)."""
    scope = dataclasses.replace(scope, still_allowed=tenant_recheck(request, Perm.READ_LOGS))
    return sse_response(request, scope=scope, after=log_cursor(request))

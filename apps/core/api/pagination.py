"""Optional paging for list routes that keeps the contract's plain array bodies.

Without `limit` or `cursor` a list answers every row, exactly as the contract (and the
original's clients) expect. With `?limit=N` (1..MAX_LIMIT) it answers at most N rows in the
list's usual order, and when more follow, a `Link: <...?cursor=...&limit=N>; rel="next"` header
(RFC 8288, exposed to browsers through CORS) names the next page. Cursors are opaque keyset
positions (DRF's CursorPagination), so pages stay consistent while rows are added.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from apps.core.api.errors import bad_request

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class LinkHeaderCursorPagination(CursorPagination):
    cursor_query_param = "cursor"
    page_size_query_param = "limit"
    page_size = DEFAULT_LIMIT
    max_page_size = MAX_LIMIT
    template = None

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> Any:
        params = request.query_params
        if "limit" not in params and "cursor" not in params:
            return None
        self._ordering = _ordering_of(queryset)
        try:
            return super().paginate_queryset(queryset, request, view)
        except (ValueError, TypeError, ValidationError):
            # A cursor is only base64 of a position: an edited one may hold a value the
            # ordering field cannot take (text for a number or a timestamp).
            raise bad_request("invalid_cursor", "cursor: not a cursor this API issued") from None

    def get_page_size(self, request: Any) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            limit = int(raw)
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIMIT:
            raise bad_request("invalid_limit", f"limit: must be an integer from 1 to {MAX_LIMIT}")
        return limit

    def get_ordering(self, request: Any, queryset: Any, view: Any) -> tuple[str, ...]:
        return self._ordering

    def decode_cursor(self, request: Any) -> Any:
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise bad_request("invalid_cursor", "cursor: not a cursor this API issued") from None

    def get_paginated_response(self, data: Any) -> Response:
        response = Response(data)
        next_link = self.get_next_link()
        if next_link:
            response["Link"] = f'<{next_link}>; rel="next"'
        return response

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return schema


def list_response(request: Any, queryset: Any, serializer_class: Any, view: Any = None) -> Response:
    """A list route outside the viewsets (sub-lists, runs, orgs, members, keys): every row, as
    the contract answers, or one page with a `Link` to the next when `limit` or `cursor` is
    given: the same paging as every `OrgScopedViewSet` list."""
    paginator = LinkHeaderCursorPagination()
    page = paginator.paginate_queryset(queryset, request, view)
    if page is None:
        return Response(serializer_class(queryset, many=True).data)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


def _ordering_of(queryset: Any) -> tuple[str, ...]:
    """The list's own order (its queryset's, else the model's), with the primary key as the
    tie-breaker so rows sharing a timestamp keep one order from page to page."""
    ordering = tuple(queryset.query.order_by) or tuple(queryset.model._meta.ordering)
    ordering = tuple(str(field) for field in ordering) or ("-created_at",)
    if ordering[-1].lstrip("-") not in ("id", "pk"):
        ordering = (*ordering, "-id" if ordering[0].startswith("-") else "id")
    return ordering

"""The base of every console page (Django admin): what a list costs and how a moment reads.

- Lists never count a whole table. Django's changelist counts the filtered rows (and, unless told
  otherwise, the unfiltered table too) on every page view; with millions of job runs, audit
  entries or webhook deliveries that is seconds per view. `BoundedPaginator` counts at most
  `cap + 1` rows with a LIMITed subquery, says "10,000+" past the cap, and still pages on
  (each page past the cap reads one row more than it shows, to know whether a next one exists)
  down to row `depth * cap`; deeper page numbers are refused like a page past the end.
- "Select all" past the cap is refused (`ConsoleAdmin.response_action`): the page cannot say
  how many rows the action would change.
- Big tables' lists use `recent_filter` and `choices_filter` instead of the date hierarchy and
  all-values filters, which read the whole table on each view (docs/console.md).
- Moments read in the viewer's zone: every read-only date-time field on a change page renders as
  the same `<time datetime>` element as the lists (`time_element`), which
  `static/console/localtime.js` (loaded by `admin/base_site.html`) shows in the viewer's zone
  with the zone named; without scripts the page says the UTC time.

`apps.orgs.console_base.OrgScopedAdmin` builds on `ConsoleAdmin`; the few admins that are not
org-scoped inherit `ConsoleAdmin` directly (tests/test_console_lists.py walks the registry).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, timedelta
from functools import cached_property
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.core.exceptions import FieldDoesNotExist
from django.core.paginator import EmptyPage, Page, Paginator
from django.db import models
from django.http import HttpRequest, HttpResponseRedirect
from django.utils import timezone
from django.utils.html import format_html

# --- moments -------------------------------------------------------------------------------


def time_element(value: Any, empty: str = "—") -> str:
    """A moment as `<time datetime>`: UTC to the second for readers without scripts;
    `static/console/localtime.js` shows it in the viewer's time zone, with the zone."""
    if value is None:
        return empty
    utc = value.astimezone(UTC)
    return format_html(
        '<time datetime="{}">{}</time>',
        utc.isoformat().replace("+00:00", "Z"),
        utc.strftime("%Y-%m-%d %H:%M:%S UTC"),
    )


def _time_field(field: models.DateTimeField, empty: str) -> Callable[[Any], str]:
    """A read-only form entry showing `field` as a `<time>` element. Named like the field, so
    the page keeps its `field-<name>` class, label and help text."""

    def show(obj: Any) -> str:
        return time_element(getattr(obj, field.attname), empty)

    show.__name__ = field.name
    show.short_description = field.verbose_name  # type: ignore[attr-defined]
    return show


def _datetime_field(model: type[models.Model], name: Any) -> models.DateTimeField | None:
    if not isinstance(name, str):
        return None
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return None
    return field if isinstance(field, models.DateTimeField) else None


def _replace_names(fields: Any, swap: dict[str, Any]) -> Any:
    """A fieldset's `fields` with the names in `swap` replaced (lines may be tuples of names)."""
    return [
        _replace_names(name, swap) if isinstance(name, list | tuple) else swap.get(name, name)
        for name in fields
    ]


def times_as_elements(
    model: type[models.Model],
    fieldsets: Sequence[tuple[Any, dict[str, Any]]],
    readonly: Sequence[Any],
    empty: str,
) -> tuple[list[tuple[Any, dict[str, Any]]], list[Any]]:
    """`fieldsets` and `readonly` with each read-only date-time field of `model` replaced by an
    entry that renders a `<time>` element (`_time_field`). Applied when the page is drawn, after
    its form was built, so what is saved does not change."""
    swap = {}
    for name in readonly:
        field = _datetime_field(model, name)
        if field is not None:
            swap[name] = _time_field(field, empty)
    if not swap:
        return list(fieldsets), list(readonly)
    fieldsets = [
        (title, {**options, "fields": _replace_names(options.get("fields", ()), swap)})
        for title, options in fieldsets
    ]
    return fieldsets, [swap.get(name, name) for name in readonly]


# --- counting ------------------------------------------------------------------------------


class CountAtLeast(int):
    """A count that stopped at its cap: compares as `cap + 1` (more than the cap: several pages,
    no "show all") and reads as "10,000+" wherever Django writes the count into the page."""

    cap: int

    def __new__(cls, cap: int) -> CountAtLeast:
        count = super().__new__(cls, cap + 1)
        count.cap = cap
        return count

    def __str__(self) -> str:
        return f"{self.cap:,}+"


class BoundedPage(Page):
    """A page past the paginator's cap: whether a next page exists is known from the row read
    beyond this one, not from a total."""

    def __init__(self, object_list: Any, number: int, paginator: Paginator, *, more: bool):
        super().__init__(object_list, number, paginator)
        self.more = more

    def has_next(self) -> bool:
        return self.more

    def end_index(self) -> int:
        return self.start_index() + len(self.object_list) - 1


class BoundedPaginator(Paginator):
    """A paginator that counts at most `cap + 1` rows (`SELECT COUNT(*) FROM (SELECT … LIMIT
    cap + 1)`), so a list page costs the same on a table of a thousand rows or of ten million.

    Past the cap the count is a `CountAtLeast` and pages are served as long as rows exist:
    each reads `per_page + 1` rows (the extra one says whether a next page exists), and the
    page links are the first ones, those around the current page and its next one."""

    cap = 10_000
    # How deep past the cap pages are served, in caps: page links and hand-typed `?p=` alike stop
    # at the page holding row `depth * cap` (100,000 rows at the defaults). Deeper, each page
    # would make PostgreSQL skip that many rows (OFFSET), so the page is refused like one past
    # the end (Django's redirect to `?e=1`); a filter or search gets there instead.
    depth = 10

    @classmethod
    def deepest_page_for(cls, *, per_page: int) -> int:
        """The last page number served for a list past the cap, `per_page` rows a page."""
        return max(math.ceil(cls.cap * cls.depth / max(per_page, 1)), 1)

    @property
    def deepest_page(self) -> int:
        return self.deepest_page_for(per_page=self.per_page)

    @cached_property
    def count(self) -> int:  # type: ignore[override]
        rows = self.object_list
        if isinstance(rows, models.QuerySet):
            # Order is irrelevant to a count; without it PostgreSQL stops at the limit.
            counted = rows.order_by()[: self.cap + 1].count()
        else:
            counted = len(rows)
        return CountAtLeast(self.cap) if counted > self.cap else counted

    @property
    def capped(self) -> bool:
        return isinstance(self.count, CountAtLeast)

    @cached_property
    def _pages(self) -> dict[int, Page]:
        return {}

    def validate_number(self, number: Any) -> int:
        if not self.capped:
            return super().validate_number(number)
        try:
            if isinstance(number, float) and not number.is_integer():
                raise ValueError
            number = int(number)
        except (TypeError, ValueError) as exc:
            raise EmptyPage("That page number is not an integer") from exc
        if number < 1:
            raise EmptyPage("That page number is less than 1")
        if number > self.deepest_page:
            raise EmptyPage("That page is too deep; narrow the list with a filter or search")
        return number

    def page(self, number: Any) -> Page:
        number = self.validate_number(number)
        if not self.capped:
            return super().page(number)
        if number not in self._pages:
            bottom = (number - 1) * self.per_page
            rows = list(self.object_list[bottom : bottom + self.per_page + 1])
            if not rows:
                raise EmptyPage("That page contains no results")
            more = len(rows) > self.per_page and number < self.deepest_page
            self._pages[number] = BoundedPage(rows[: self.per_page], number, self, more=more)
        return self._pages[number]

    def get_elided_page_range(
        self, number: Any = 1, *, on_each_side: int = 3, on_ends: int = 2
    ) -> Iterator[Any]:
        if not self.capped:
            yield from super().get_elided_page_range(
                number, on_each_side=on_each_side, on_ends=on_ends
            )
            return
        number = self.validate_number(number)
        # Pages known to exist without reading them: the count passed the cap.
        known = math.ceil(self.cap / self.per_page)
        first = range(1, min(on_ends, number - 1) + 1)
        yield from first
        start = max(number - on_each_side, len(first) + 1)
        if start > len(first) + 1:
            yield self.ELLIPSIS
        yield from range(start, number + 1)
        try:
            has_next = self.page(number).has_next()
        except EmptyPage:
            has_next = False
        if has_next:
            yield number + 1
            yield from range(number + 2, min(number + on_each_side, known) + 1)
            # The last page is not known: the count stopped at the cap.
            yield self.ELLIPSIS


# --- filters for big tables ----------------------------------------------------------------


def recent_filter(field: str, title: str) -> type[admin.SimpleListFilter]:
    """A list filter "last hour / 24 h / 7 days / 30 days" on the date-time column `field`, for
    tables that grow without bound (audit entries, job runs). Django's date hierarchy reads
    `SELECT DISTINCT DATE_TRUNC(…)` over the whole table on every view to draw its links; these
    choices are fixed and each is a range on an indexed column."""

    windows = {"1h": timedelta(hours=1), "24h": timedelta(hours=24), "7d": timedelta(days=7)}
    windows["30d"] = timedelta(days=30)
    labels = {"1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days"}
    labels["30d"] = "Last 30 days"

    class RecentFilter(admin.SimpleListFilter):
        parameter_name = f"{field}_within"

        def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
            return list(labels.items())

        def queryset(self, request: HttpRequest, queryset: models.QuerySet) -> models.QuerySet:
            window = windows.get(self.value() or "")
            if window is None:
                return queryset
            return queryset.filter(**{f"{field}__gte": timezone.now() - window})

    RecentFilter.title = title
    RecentFilter.__name__ = f"Recent_{field}_Filter"
    return RecentFilter


def choices_filter(
    field: str, title: str, choices: Callable[[], Iterable[str]]
) -> type[admin.SimpleListFilter]:
    """A list filter on the free-text column `field` offering the values the code knows
    (`choices()`, e.g. the audit event registry), instead of Django's all-values filter, which
    reads `SELECT DISTINCT field` over the whole table on every view."""

    class ChoicesFilter(admin.SimpleListFilter):
        parameter_name = field

        def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
            return [(value, value) for value in sorted(choices())]

        def queryset(self, request: HttpRequest, queryset: models.QuerySet) -> models.QuerySet:
            value = self.value()
            return queryset.filter(**{field: value}) if value else queryset

    ChoicesFilter.title = title
    ChoicesFilter.__name__ = f"{field.title()}ChoicesFilter"
    return ChoicesFilter


# --- the base admin ------------------------------------------------------------------------


class ConsoleAdmin(admin.ModelAdmin):
    """Every console page's base: bounded list counts (`BoundedPaginator`, no count of the
    unfiltered table, no facet counts) and read-only date-time fields as `<time>` elements."""

    paginator = BoundedPaginator
    show_full_result_count = False
    # Facets count every choice of every filter over the whole list on each view.
    show_facets = admin.ShowFacets.NEVER

    def response_action(self, request: HttpRequest, queryset: models.QuerySet) -> Any:
        """Run a list action, except "select all" on a list whose count stopped at the cap: the
        page says only "10,000+", so the operator cannot know how many rows the action would
        change, and it would loop over all of them in one request. Refused, with no row
        changed, until a filter or search brings the list under the cap; a selection of
        rows on the page is not affected."""
        if request.POST.get("select_across") in ("1", "True", "true") and request.POST.get(
            "action"
        ):
            cap = self.paginator.cap if issubclass(self.paginator, BoundedPaginator) else None
            if cap is not None and queryset.order_by()[: cap + 1].count() > cap:
                self.message_user(
                    request,
                    f"More than {cap:,} rows match: narrow the list with a filter or search "
                    f"below {cap:,} rows to act on all of them, or select rows on the page. "
                    "No row was changed.",
                    messages.WARNING,
                )
                return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset)

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Any = None,
    ) -> Any:
        empty = self.get_empty_value_display()
        adminform = context.get("adminform")
        if adminform is not None:
            adminform.fieldsets, adminform.readonly_fields = times_as_elements(
                self.model, adminform.fieldsets, adminform.readonly_fields, empty
            )
        for inline in context.get("inline_admin_formsets", ()):
            readonly = list(inline.readonly_fields)
            if not inline.has_change_permission:
                # Django shows every field of a view-only inline read-only.
                readonly += flatten_fieldsets(inline.fieldsets)
            inline.fieldsets, inline.readonly_fields = times_as_elements(
                inline.opts.model, inline.fieldsets, readonly, empty
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

"""Console pages at scale and in the viewer's zone (apps/core/console_admin.py): no list page
counts a whole table, a list longer than the count's cap says so and still pages, and read-only
moments on change pages are `<time>` elements that localtime.js shows in the viewer's zone."""

from __future__ import annotations

import re

import pytest
from django.contrib import admin
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.accounts.tests.factories import UserFactory
from apps.core.console_admin import BoundedPaginator, ConsoleAdmin
from apps.infrastructure.models import Server
from apps.jobs.models import JobRun
from apps.orgs.tests.admin_support import build_world, console_for

pytestmark = pytest.mark.django_db

# A bounded count: COUNT over a subquery that stops at a LIMIT.
BOUNDED_COUNT = re.compile(r"SELECT COUNT\(\*\) FROM \(SELECT .* LIMIT (\d+)\) subquery", re.S)


# The date hierarchy's only condition (`QuerySet.dates()`): it bounds nothing.
NOT_NULL = re.compile(r' WHERE "\w+"\."\w+" IS NOT NULL')
# `SELECT DISTINCT … FROM "table"` (a query or a subquery such as Django's related-only filter's)
# that no WHERE or LIMIT bounds before its statement or subquery ends.
WHOLE_TABLE_DISTINCT = re.compile(
    r'SELECT DISTINCT [^()]*?(?:\([^()]*\)[^()]*?)*FROM "(\w+)"(?![^()]*(?:WHERE|LIMIT))'
)
# The tables that grow with use, without bound: their list pages read only bounded slices.
BIG_TABLES = (
    "audit_auditentry",
    "jobs_jobrun",
    "jobs_joblog",
    "webhooks_webhookdelivery",
    "webhooks_webhookattempt",
    "webhooks_webhookevent",
)


def _changelist(model) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")


def _ours() -> list:
    return sorted(
        (
            (model, model_admin)
            for model, model_admin in admin.site._registry.items()
            if type(model_admin).__module__.startswith("apps.")
        ),
        key=lambda item: item[0]._meta.label,
    )


@pytest.fixture
def rita():
    return console_for(UserFactory(primary_email="rita@autoglue.example", is_admin=True))


def test_every_console_page_of_ours_is_built_on_the_bounded_console_base():
    pages = _ours()
    assert len(pages) > 20
    for model, model_admin in pages:
        assert isinstance(model_admin, ConsoleAdmin), model
        assert model_admin.show_full_result_count is False, model
        assert issubclass(model_admin.paginator, BoundedPaginator), model
        # "Show all" (every row in one page, unlimited) only for lists counted exactly.
        assert model_admin.list_max_show_all < BoundedPaginator.cap, model


def test_no_list_page_counts_a_whole_table(org, rita):
    build_world(org, "acme")
    checked = 0
    for model, _ in _ours():
        for query in ("", "?q=acme"):
            with CaptureQueriesContext(connection) as captured:
                response = rita.get(_changelist(model) + query)
            assert response.status_code == 200, model
            # Filters that list every value of a column (Django's all-values filter, the date
            # hierarchy's years) read the whole table on each view: not on the tables that grow
            # without bound.
            scans = [
                sql
                for sql in (q["sql"] for q in captured.captured_queries)
                for scan in WHOLE_TABLE_DISTINCT.finditer(NOT_NULL.sub("", sql))
                if scan.group(1) in BIG_TABLES
            ]
            assert scans == [], f"{model._meta.label}{query}: whole-table scan {scans}"
            counts = [q["sql"] for q in captured.captured_queries if "COUNT(" in q["sql"]]
            for sql in counts:
                bounded = BOUNDED_COUNT.search(sql)
                assert bounded, f"{model._meta.label}: unbounded count {sql}"
                assert int(bounded.group(1)) == BoundedPaginator.cap + 1
            checked += bool(counts)
    # Every list counted its rows (boundedly): the assertion above saw real queries.
    assert checked >= 2 * 20


def test_a_list_longer_than_the_cap_says_so_and_still_pages_to_its_end(monkeypatch, rita):
    monkeypatch.setattr(BoundedPaginator, "cap", 5)
    monkeypatch.setattr(admin.site._registry[JobRun], "list_per_page", 2)
    # As with the real cap: "show all" is offered only below it (list_max_show_all < cap).
    monkeypatch.setattr(admin.site._registry[JobRun], "list_max_show_all", 4)
    runs = [JobRun.objects.create(kind="backup", queue="default") for _ in range(9)]
    url = _changelist(JobRun)

    first = rita.get(url)
    assert first.status_code == 200
    text = first.content.decode()
    assert "5+ job runs" in text
    assert "?p=2" in text
    # No "Show all" link under the list: all rows of an uncounted table in one page.
    assert 'class="showall"' not in text

    seen = []
    # Pages past the cap (5 rows counted, 2 a page) are still served, each with a next link
    # while rows remain.
    for page in range(1, 6):
        response = rita.get(f"{url}?p={page}")
        assert response.status_code == 200, page
        rows = [obj.pk for obj in response.context["cl"].result_list]
        seen += rows
        body = response.content.decode()
        assert (f"?p={page + 1}" in body) == (page < 5), page
        if page > 1:
            assert f"?p={page - 1}" in body, page
    assert sorted(seen) == sorted(run.pk for run in runs)
    assert len(seen) == len(set(seen)) == 9

    beyond = rita.get(f"{url}?p=6")
    assert beyond.status_code == 302
    assert beyond["Location"].endswith("?e=1")


def test_a_short_list_still_gives_its_exact_count(rita):
    for _ in range(3):
        JobRun.objects.create(kind="backup", queue="default")
    response = rita.get(_changelist(JobRun))
    assert response.context["cl"].result_count == 3
    assert "3 job runs" in response.content.decode()


def test_a_change_pages_read_only_created_at_is_a_time_element_in_utc(org, rita):
    server = build_world(org, "acme")["server"]
    response = rita.get(reverse("admin:infrastructure_server_change", args=[server.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    cell = re.search(r'field-created_at.*?<div class="readonly">(.*?)</div>', body, re.S)
    assert cell, "no read-only created_at on the page"
    created = Server.objects.get(pk=server.pk).created_at
    element = re.fullmatch(r'\s*<time datetime="([^"]+)">([^<]+)</time>\s*', cell.group(1))
    assert element, cell.group(1)
    assert element.group(1).endswith("Z")
    assert element.group(1) == created.isoformat().replace("+00:00", "Z")
    assert element.group(2) == created.strftime("%Y-%m-%d %H:%M:%S UTC")


def test_a_view_only_page_shows_its_editable_moments_as_time_elements_too(org, rita):
    # A run's page is read-only throughout: `queued_at` and `finished_at` are fields there.
    run = JobRun.objects.create(kind="backup", queue="default")
    response = rita.get(reverse("admin:jobs_jobrun_change", args=[run.pk]))
    body = response.content.decode()
    queued = re.search(r'field-queued_at.*?<div class="readonly">(.*?)</div>', body, re.S)
    assert queued and queued.group(1).strip().startswith("<time datetime="), body[:200]
    finished = re.search(r'field-finished_at.*?<div class="readonly">(.*?)</div>', body, re.S)
    # No moment yet: the console's empty mark, not an empty <time>.
    assert finished and "<time" not in finished.group(1)


def test_the_job_pages_status_poll_gives_its_times_as_the_pages_time_elements_say_them(rita):
    run = JobRun.objects.create(kind="backup", queue="default")
    JobRun.objects.filter(pk=run.pk).update(status=JobRun.Status.RUNNING)
    run.refresh_from_db()
    run.started_at = run.queued_at
    run.save(update_fields=["started_at"])
    status = rita.get(reverse("admin:jobs_jobrun_status", args=[run.pk])).json()
    assert status["started_at"] == run.started_at.isoformat().replace("+00:00", "Z")
    assert status["started_at_text"] == run.started_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert status["finished_at_text"] == ""


def _long_job_list(monkeypatch, rows: int = 9) -> list[JobRun]:
    """A job list past the count's cap: 5 rows counted, 2 a page."""
    monkeypatch.setattr(BoundedPaginator, "cap", 5)
    monkeypatch.setattr(admin.site._registry[JobRun], "list_per_page", 2)
    monkeypatch.setattr(admin.site._registry[JobRun], "list_max_show_all", 4)
    return [JobRun.objects.create(kind="backup", queue="default") for _ in range(rows)]


def test_a_twenty_digit_page_number_past_the_cap_is_djangos_usual_redirect_not_a_500(
    monkeypatch, rita
):
    _long_job_list(monkeypatch)
    response = rita.get(_changelist(JobRun) + "?p=99999999999999999999")
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_a_page_deeper_than_the_bound_is_refused_without_reading_its_rows(monkeypatch, rita):
    _long_job_list(monkeypatch)
    deepest = BoundedPaginator.deepest_page_for(per_page=2)
    url = _changelist(JobRun)
    with CaptureQueriesContext(connection) as captured:
        response = rita.get(f"{url}?p={deepest + 1}")
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")
    offsets = [q["sql"] for q in captured.captured_queries if "OFFSET" in q["sql"]]
    assert offsets == []
    # A big but valid number too: PostgreSQL is never asked to skip that many rows.
    assert rita.get(f"{url}?p=4000000000").status_code == 302


def _act_across(client, action: str, pk) -> object:
    return client.post(
        _changelist(JobRun),
        {"action": action, "select_across": "1", "index": "0", "_selected_action": [str(pk)]},
        follow=True,
    )


def test_select_all_on_a_list_past_the_cap_is_refused_and_changes_no_row(monkeypatch, rita):
    runs = _long_job_list(monkeypatch)
    response = _act_across(rita, "cancel_selected", runs[0].pk)

    assert response.status_code == 200
    assert JobRun.objects.filter(status="canceled").count() == 0
    text = " ".join(str(m) for m in response.context["messages"])
    assert "narrow" in text and "5" in text


def test_select_all_below_the_cap_still_acts_on_every_matching_row(monkeypatch, rita):
    runs = _long_job_list(monkeypatch, rows=4)
    _act_across(rita, "cancel_selected", runs[0].pk)
    assert JobRun.objects.filter(status="canceled").count() == 4


def test_the_job_list_narrows_to_recent_runs_and_a_queue_from_fixed_choices(rita):
    from datetime import timedelta

    from django.utils import timezone

    old = JobRun.objects.create(kind="backup", queue="maintenance")
    JobRun.objects.filter(pk=old.pk).update(queued_at=timezone.now() - timedelta(days=3))
    recent = JobRun.objects.create(kind="backup", queue="maintenance")
    ssh = JobRun.objects.create(kind="bootstrap_bastion", queue="ssh")
    url = _changelist(JobRun)

    def shown(query: str) -> set:
        response = rita.get(url + query)
        assert response.status_code == 200, query
        return {run.pk for run in response.context["cl"].result_list}

    assert shown("?queued_at_within=24h") == {recent.pk, ssh.pk}
    assert shown("?queued_at_within=7d") == {old.pk, recent.pk, ssh.pk}
    assert shown("?queue=ssh") == {ssh.pk}
    # The choices come from the code: a queue with no run yet is offered all the same.
    body = rita.get(url).content.decode()
    assert "?queue=default" in body and "Last 24 hours" in body


def test_the_audit_list_filters_by_event_and_object_type_from_the_codes_own_lists(rita, org):
    from apps.audit.models import AuditEntry

    build_world(org, "acme")
    url = reverse("admin:audit_auditentry_changelist")
    response = rita.get(url + "?event=resource.create&occurred_at_within=1h")
    assert response.status_code == 200
    entries = list(response.context["cl"].result_list)
    assert entries and {entry.event for entry in entries} == {"resource.create"}
    assert AuditEntry.objects.exclude(event="resource.create").exists()
    body = rita.get(url).content.decode()
    assert "?event=secret.reveal" in body and "?object_type=infrastructure.server" in body


def test_the_organization_filter_offers_the_viewers_organizations_and_filters_by_them(
    org, other_org
):
    from apps.orgs.tests.admin_support import staff_of
    from apps.orgs.tests.factories import MembershipFactory, OrganizationFactory

    build_world(org, "acme")
    build_world(other_org, "globex")
    user = staff_of(org, "owner", "alice@acme.example")
    # A second organization of hers, with no server yet: the filter shows when it has a choice.
    second = OrganizationFactory()
    MembershipFactory(organization=second, user=user, role="owner")
    alice = console_for(user)
    url = _changelist(Server)

    body = alice.get(url).content.decode()
    assert f"organization__id__exact={org.pk}" in body
    assert f"organization__id__exact={second.pk}" in body
    assert f"organization__id__exact={other_org.pk}" not in body
    shown = alice.get(f"{url}?organization__id__exact={org.pk}").context["cl"].result_list
    assert shown and {server.organization_id for server in shown} == {org.pk}

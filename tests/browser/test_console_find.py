"""Finding things and acting on them in a real browser under the production CSP: incident drill
3 (a leaked key found by pasting it into the header's search and revoked with confirmation, in
three clicks from the dashboard), servers found by address and hostname, times in the viewer's
zone, a credential typed part by part, "Back up now" with its live log, and a DNS plan made by
a POST."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import boto3
import pytest
import requests
from django.utils import timezone
from playwright.sync_api import expect

from apps.accounts import services as account_services
from apps.accounts.models import APIKey, User
from apps.infrastructure.models import Credential
from apps.infrastructure.tests.factories import ServerFactory
from apps.jobs.models import JobRun
from apps.jobs.tests.support import run_queued
from apps.maintenance.models import Backup
from apps.maintenance.tests.conftest import BUCKET, KEY, KEY_ID
from apps.orgs.tests.factories import OrganizationFactory
from tests import live
from tests.browser.support import sign_in_with_password
from tests.browser.test_console_workflow import _choose_organization

pytestmark = [pytest.mark.slow]

BACKUP_ENV = {
    "BACKUP_ENABLED": "true",
    "BACKUP_S3_BUCKET": BUCKET,
    "AUTOGLUE_BACKUP_KEYS": f"{KEY_ID}:{KEY}",
}


@pytest.fixture(scope="module")
def console_url(web_env, tmp_path_factory):  # type: ignore[no-untyped-def]
    """The web role with backups switched on (the button shows); jobs run in the test."""
    web, url = live.start_web(
        tmp_path_factory.mktemp("browser-find"), {**web_env, **BACKUP_ENV}, workers=1
    )
    try:
        yield url
    finally:
        web.stop()


def _search(page, text: str) -> None:  # type: ignore[no-untyped-def]
    box = page.locator("#ag-search input[type=search]")
    box.fill(text)
    box.press("Enter")


def test_drill_3_a_leaked_key_is_found_by_pasting_it_and_revoked_with_confirmation(
    page, platform_admin, console_url
):
    owner = User.objects.create_user("dev@acme.example")
    leaked = account_services.api_key_create_for_user(user=owner, name="laptop")
    secret = leaked.plain.split("_", 2)[2]
    assert requests.get(
        f"{console_url}/api/v1/me", headers={"X-API-KEY": leaked.plain}, timeout=10
    ).ok
    sign_in_with_password(page, platform_admin)
    page.shots("dashboard")
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url))

    _search(page, leaked.plain)  # click 1: paste and search
    page.wait_for_url(re.compile(rf".*/admin/accounts/apikey/{leaked.key.pk}/change/$"))
    expect(page.locator("#content")).to_contain_text(leaked.key.public_id)
    assert secret not in page.content() and secret not in page.url
    # The form sent the public form only: the secret never was in a request line.
    assert any(f"q=u_{leaked.key.public_id}" in url for url in sent)
    assert not any(secret in url for url in sent)
    page.shots("found-by-pasting")
    page.locator("#revoke-key").click()  # click 2
    expect(page.locator(".ag-confirm-question")).to_contain_text("cannot be brought back")
    page.shots("asked-to-confirm")
    page.locator("#confirm-action").click()  # click 3
    expect(page.locator(".messagelist")).to_contain_text("revoked")
    page.shots("revoked")

    assert APIKey.objects.get(pk=leaked.key.pk).revoked_at is not None
    answer = requests.get(
        f"{console_url}/api/v1/me", headers={"X-API-KEY": leaked.plain}, timeout=10
    )
    assert answer.status_code == 401
    assert page.csp_violations == []


def test_servers_are_found_by_address_and_by_hostname(page, platform_admin):
    org = OrganizationFactory(name="Acme")
    ServerFactory(
        organization=org, hostname="edge-1.acme.internal", public_ip_address="203.0.113.7"
    )
    ServerFactory(organization=org, hostname="edge-2.acme.internal", status="failed")
    sign_in_with_password(page, platform_admin)

    _search(page, "203.0.113.7")
    page.wait_for_url(re.compile(r".*/admin/infrastructure/server/[0-9a-f-]+/change/$"))
    expect(page.locator("#content")).to_contain_text("edge-1.acme.internal")
    page.shots("server-by-ip")

    _search(page, "edge-")
    expect(page.locator(".ag-search-kind h2")).to_contain_text("Servers (2)")
    expect(page.locator(".ag-search-kind .ag-badge-error")).to_have_text("failed")
    page.shots("servers-by-hostname")
    page.goto("/admin/infrastructure/server/")
    expect(page.locator("#result_list .ag-badge-error")).to_have_text("failed")
    # A server waiting in `pending` is not work under way: the list does not keep reloading.
    expect(page.locator("#result_list .ag-badge-busy")).to_have_text("pending")
    expect(page.locator("#ag-refreshing")).to_have_count(0)
    page.shots("server-list-badges")
    # A list wider than the window scrolls sideways inside the page instead of being cut off.
    page.set_viewport_size({"width": 640, "height": 900})
    results = page.locator("#changelist .results")
    assert results.evaluate("e => getComputedStyle(e).overflowX") == "auto"
    assert results.evaluate("e => e.scrollWidth > e.clientWidth")
    page.shots("narrow-window-scrolls", full_page=False)
    assert page.csp_violations == []


def test_times_show_in_the_viewers_zone_with_the_zone_named(browser, console_url, platform_admin):
    context = browser.new_context(base_url=console_url, timezone_id="Asia/Tokyo")
    tab = context.new_page()
    try:
        sign_in_with_password(tab, platform_admin)
        org = OrganizationFactory(name="Acme")
        # 00:05:09 in Tokyo: hours run 00-23 (en-US with hour12:false wrote "24:05").
        type(org).objects.filter(pk=org.pk).update(
            created_at=datetime(2026, 12, 5, 15, 5, 9, tzinfo=UTC)
        )
        tab.goto("/admin/orgs/organization/")
        moment = tab.locator("#result_list time[datetime]").first
        expect(moment).to_have_attribute("data-local", "Asia/Tokyo")
        expect(moment).to_have_text(re.compile(r"^2026-12-06 00:05:09 (GMT\+9|JST)$"))
        tab.screenshot(path=str(live.ROOT / ".artifacts" / "browser" / "local-time.png"))
        # A change page's read-only moments read the same, under the production CSP.
        tab.goto(f"/admin/orgs/organization/{org.pk}/change/")
        created = tab.locator(".field-created_at .readonly time[datetime]")
        expect(created).to_have_attribute("datetime", "2026-12-05T15:05:09Z")
        expect(created).to_have_attribute("data-local", "Asia/Tokyo")
        expect(created).to_have_text(re.compile(r"^2026-12-06 00:05:09 (GMT\+9|JST)$"))
    finally:
        context.close()


def test_a_credential_is_typed_part_by_part_and_checked_like_the_api(page, platform_admin):
    org = OrganizationFactory(name="Acme")
    sign_in_with_password(page, platform_admin)
    page.goto("/admin/infrastructure/credential/add/")
    _choose_organization(page, org.name)
    page.fill("#id_name", "dns")
    page.select_option("#id_provider", "aws")
    # A token typed for another kind before switching is not sent, so it cannot be refused on
    # a field nobody sees.
    page.select_option("#id_kind", "api_token")
    page.fill("#id_secret__token", "CANARY-stray-token")
    page.select_option("#id_kind", "aws_access_key")
    page.select_option("#id_scope_kind", "service")
    # Only the chosen kinds' parts show.
    expect(page.locator("fieldset.ag-secret-api_token")).to_be_hidden()
    expect(page.locator("fieldset.ag-secret-aws_access_key")).to_be_visible()
    page.select_option("#id_scope__service", "route53")
    page.fill("#id_secret__access_key_id", "too-short")
    page.fill("#id_secret__secret_access_key", "CANARY-browser-secret")
    page.shots("typed")
    page.locator("input[name=_save]").click()
    expect(page.locator(".field-secret__access_key_id .errorlist")).to_contain_text(
        "exactly 20 letters or digits"
    )
    expect(page.locator(".field-secret__token .errorlist")).to_have_count(0)
    assert "CANARY-browser-secret" not in page.content()
    page.shots("refused-like-the-api")
    page.fill("#id_secret__access_key_id", "AKIABROWSER000000001")
    page.fill("#id_secret__secret_access_key", "CANARY-browser-secret")
    page.locator("input[name=_save]").click()
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    assert Credential.objects.get(name="dns").scope == {"service": "route53"}
    assert page.csp_violations == []


def test_back_up_now_starts_a_backup_and_shows_its_log(
    page, platform_admin, moto_server, settings, monkeypatch
):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings.BACKUP_ENABLED = True
    settings.BACKUP_S3_BUCKET = BUCKET
    settings.AUTOGLUE_BACKUP_KEYS = f"{KEY_ID}:{KEY}"
    settings.AUTOGLUE_BACKUP_ACTIVE_KEY = ""
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    sign_in_with_password(page, platform_admin)

    page.locator("#dash-backup-now").click()
    page.wait_for_url(re.compile(r".*/admin/jobs/jobrun/[0-9a-f-]+/change/$"))
    expect(page.locator(".messagelist")).to_contain_text("Backup queued")
    page.shots("queued")
    job = JobRun.objects.get(kind="backup")
    assert run_queued("backup") == ["succeeded"]  # as the maintenance worker would
    expect(page.locator("#job-log")).to_contain_text("backing up database", timeout=30_000)
    page.shots("log")
    assert Backup.objects.get().status == Backup.Status.SUCCEEDED
    assert JobRun.objects.get(pk=job.pk).status == JobRun.Status.SUCCEEDED
    assert page.csp_violations == []


def test_a_dns_plan_page_makes_a_plan_only_on_the_button(page, platform_admin):
    from apps.dns.models import DNSPlan
    from apps.dns.tests.factories import DomainFactory

    org = OrganizationFactory(name="Acme")
    domain = DomainFactory(organization=org, domain_name="acme.example")
    sign_in_with_password(page, platform_admin)

    page.goto(f"/admin/dns/domain/{domain.pk}/plan/")
    page.reload()
    expect(page.locator("#no-plan")).to_be_visible()
    page.shots("no-plan-yet")
    assert not DNSPlan.objects.exists()
    page.locator("#make-plan").click()
    # This domain's zone was never checked: the POST is refused with the service's words.
    expect(page.locator(".messagelist")).to_contain_text("has not been checked yet")
    page.shots("refused")
    assert not DNSPlan.objects.exists()
    assert page.csp_violations == []


def test_the_dashboard_refreshes_while_a_job_runs_and_stops_once_none_does(page, platform_admin):
    job = JobRun.objects.create(
        kind="bastion_sweep", queue="maintenance", status="running", started_at=timezone.now()
    )
    sign_in_with_password(page, platform_admin)
    expect(page.locator("#dash-jobs .ag-badge-active")).to_have_text("running")
    expect(page.locator("#ag-refreshing")).to_be_visible()
    page.shots("refreshing")

    JobRun.objects.filter(pk=job.pk).update(status="succeeded", finished_at=timezone.now())

    # The next reload (within ten seconds) finds nothing running and refreshes no more.
    expect(page.locator("#ag-refreshing")).to_have_count(0, timeout=20_000)
    expect(page.locator("#dash-jobs .ag-badge-active")).to_have_count(0)
    page.shots("settled")
    assert page.csp_violations == []

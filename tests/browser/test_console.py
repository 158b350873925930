"""The console in a real browser under the production CSP: Google sign-in through the provider
process, the break-glass password, the dashboard, a job's live log, and the Swagger UI."""

from __future__ import annotations

import re

import pytest
import requests
from django.utils import timezone
from playwright.sync_api import expect

from apps.accounts.models import User
from apps.accounts.tests.test_sso import _put_user
from apps.clusters.tests.factories import ClusterFactory
from apps.jobs import services as jobs
from apps.jobs.logs import LogWriter
from apps.jobs.models import JobRun
from apps.orgs.tests.factories import OrganizationFactory
from tests.browser.support import PASSWORD, sign_in_with_password

pytestmark = [pytest.mark.slow]

SCROLL_AND_COLLECT_OPERATIONS = """async () => {
  const seen = new Set();
  for (let y = 0; y <= document.documentElement.scrollHeight; y += 300) {
    window.scrollTo(0, y);
    await new Promise((resolve) => setTimeout(resolve, 30));
    for (const row of document.querySelectorAll(".opblock-summary")) {
      const method = row.querySelector(".opblock-summary-method").textContent;
      seen.add(method + " " + row.querySelector(".opblock-summary-path").dataset.path);
    }
  }
  window.scrollTo(0, 0);
  return [...seen];
}"""


def test_a_workspace_admin_signs_in_with_google_in_the_browser(page, idp_url):
    User.objects.create_user("olga@acme.example", is_admin=True)
    _put_user(
        idp_url,
        "olga",
        email="olga@acme.example",
        email_verified=True,
        name="Olga",
        hd="acme.example",
    )
    page.goto("/admin/login/")
    expect(page.locator("#sso-google")).to_have_text("Sign in with Google")
    page.shots("login-page")
    page.locator("#sso-google").click()
    # The provider's own consent page: the browser got there through our redirect.
    page.wait_for_url(re.compile(re.escape(idp_url) + r"/oauth2/authorize.*"))
    page.shots("identity-provider")
    page.fill("input[name=sub]", "olga")
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(re.compile(r".*/admin/$"))
    expect(page.locator("#user-tools")).to_contain_text("olga@acme.example")
    expect(page.locator("h1")).to_have_text("Dashboard")
    page.shots("dashboard-after-google")
    assert page.csp_violations == []


def test_a_foreign_workspace_is_turned_away_in_the_browser(page, idp_url):
    _put_user(
        idp_url,
        "mallory",
        email="mallory@evil.example",
        email_verified=True,
        hd="evil.example",
    )
    page.goto("/admin/login/")
    page.locator("#sso-google").click()
    page.fill("input[name=sub]", "mallory")
    page.get_by_role("button", name="Authorize").click()
    expect(page.locator("h1")).to_have_text("Sign-in refused")
    page.shots("refused")
    page.goto("/admin/")
    page.wait_for_url(re.compile(r".*/admin/login/.*"))


def test_the_break_glass_password_signs_in_and_the_dashboard_links_to_filtered_lists(
    page, platform_admin
):
    org = OrganizationFactory(name="Acme")
    ClusterFactory(organization=org, name="prod", status="failed", last_error="boom")
    ClusterFactory(organization=org, name="staging", status="ready")
    sign_in_with_password(page, platform_admin)
    expect(page.locator("#site-name")).to_contain_text("Autoglue console")
    expect(page.locator("#dash-backup")).to_contain_text("No backups yet.")
    page.shots("dashboard")
    page.locator("#dash-clusters a", has_text="Failed").click()
    page.wait_for_url(re.compile(r".*/admin/clusters/cluster/\?status__exact=failed$"))
    expect(page.locator("#result_list")).to_contain_text("prod")
    expect(page.locator("#result_list")).not_to_contain_text("staging")
    page.shots("failed-clusters")
    page.locator("#view-site").click()
    page.wait_for_url(re.compile(r".*/api/v1/docs$"))
    assert page.csp_violations == []


def test_wrong_passwords_lock_the_break_glass_door(page, platform_admin):
    page.goto("/admin/login/")
    page.locator("summary", has_text="Break-glass").click()
    for _ in range(5):
        page.fill("#id_username", platform_admin.primary_email)
        page.fill("#id_password", "not-the-password")
        page.locator("#login-form input[type=submit]").click()
        page.wait_for_load_state()
    page.fill("#id_username", platform_admin.primary_email)
    page.fill("#id_password", PASSWORD)
    page.locator("#login-form input[type=submit]").click()
    expect(page.locator(".errornote")).to_contain_text("Too many failed sign-in attempts")
    page.shots("locked")


def test_the_swagger_ui_lists_the_operations_under_the_csp(page, console_url):
    policy = requests.get(f"{console_url}/api/v1/docs", timeout=5).headers[
        "Content-Security-Policy"
    ]
    assert "script-src 'self';" in policy and "unsafe-inline' " not in policy.split("script-src")[1]
    schema = requests.get(f"{console_url}/api/v1/openapi.json", timeout=30).json()
    methods = {"get", "post", "put", "patch", "delete"}
    expected = {
        f"{method.upper()} {path}"
        for path, item in schema["paths"].items()
        for method in methods & set(item)
    }
    page.goto("/api/v1/docs")
    expect(page.locator(".opblock-summary").first).to_be_visible()
    # Swagger UI renders operations as they scroll into view: scroll to the end, noting each.
    seen = page.evaluate(SCROLL_AND_COLLECT_OPERATIONS)
    assert set(seen) == expected
    expect(page.locator(".swagger-ui .title")).to_contain_text("Autoglue API")
    # Swagger UI draws only what is in view: a full-page picture would be mostly blank.
    page.shots("swagger", full_page=False)
    assert page.csp_violations == []


def test_the_log_viewer_follows_a_running_job_and_shows_it_finished(page, platform_admin):
    job = JobRun.objects.create(
        kind="bastion_sweep",
        queue="maintenance",
        status=JobRun.Status.RUNNING,
        started_at=timezone.now(),
        attempts=1,
    )
    writer = LogWriter(job)
    writer.system("connecting to 127.0.0.1")
    writer.write("stdout", "step 1 of 3\n")
    writer.flush()
    sign_in_with_password(page, platform_admin)
    page.goto(f"/admin/jobs/jobrun/{job.pk}/change/")
    log = page.locator("#job-log")
    expect(log).to_contain_text("step 1 of 3")
    expect(page.locator("#job-log-state")).to_have_text("live")
    page.shots("running")
    # New lines appear without a reload.
    writer.write("stdout", "step 2 of 3\nstep 3 of 3\n")
    writer.flush()
    expect(log).to_contain_text("step 3 of 3")
    writer.system("job succeeded in 1.0 s")
    writer.flush(final=True)
    jobs.job_finish(job=job, status=JobRun.Status.SUCCEEDED)
    expect(page.locator("#job-log-state")).to_have_text("finished")
    # The header follows the run to its end without a reload: no "running", no Cancel.
    expect(page.locator("#job-status")).to_have_text("Succeeded")
    expect(page.locator("#job-title")).to_contain_text("(succeeded)")
    expect(page.locator("#job-cancel")).to_be_hidden()
    page.shots("finished-live")
    # A finished run, opened afterwards, shows its whole transcript.
    page.reload()
    expect(page.locator("#job-log-state")).to_have_text("finished")
    expect(page.locator(".field-status .readonly")).to_have_text("Succeeded")
    expect(log).to_contain_text("connecting to 127.0.0.1")
    expect(log).to_contain_text("job succeeded in 1.0 s")
    # One row per output line (the second write flushed two lines in one chunk).
    assert log.locator(".log-line").count() == 5
    page.shots("finished-reopened")
    assert page.csp_violations == []

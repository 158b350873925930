"""The object pages in a real browser under the production CSP: the incident drills an operator
runs from the dashboard (a failing bastion fixed and bootstrapped again from its page over a real
sshd; a DNS conflict found and understood), each in at most three clicks, the job page following
a run to its end, and every link on the cluster and server pages answering 200.

Screenshots: `.artifacts/browser/<test>/` (ignored by git)."""

from __future__ import annotations

import re
import socket
import threading
from urllib.parse import urljoin

import pytest
from django.db import connection
from django.utils import timezone
from playwright.sync_api import expect

from apps.clusters.tests.factories import ClusterFactory
from apps.console.tests.support import cluster_stack
from apps.dns.models import RecordSet
from apps.dns.tests.factories import DomainFactory, RecordSetFactory
from apps.infrastructure import bootstrap
from apps.infrastructure.models import Server
from apps.jobs.models import JobRun
from apps.jobs.tests.support import bastion_on, run_queued
from apps.orgs.tests.factories import OrganizationFactory
from tests.browser.support import sign_in_with_password

pytestmark = [pytest.mark.slow]

QUICK_BOOTSTRAP = """#!/usr/bin/env bash
echo "bootstrap step: packages"
sleep 0.3
echo "bootstrap step: sshd"
sleep 0.3
echo "bootstrap complete"
"""


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_in_worker(kind: str) -> threading.Thread:
    """Run the queued jobs of `kind` as a worker would, in a thread (the page keeps working)."""

    def work() -> None:
        try:
            run_queued(kind)
        finally:
            connection.close()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def failing_bastion(sshd_factory, settings, tmp_path):
    """A bastion whose port is wrong: its bootstrap ran and failed (connection refused)."""
    script = tmp_path / "bootstrap.sh"
    script.write_text(QUICK_BOOTSTRAP)
    settings.BASTION_BOOTSTRAP_SCRIPT = str(script)
    settings.JOB_HEARTBEAT_SECONDS = 0.2
    settings.JOB_LOG_FLUSH_SECONDS = 0.1
    org = OrganizationFactory(name="Acme")
    sshd = sshd_factory()
    bastion = bastion_on(sshd, org, hostname="bastion-prod", ssh_port=_closed_port())
    ClusterFactory(organization=org, name="prod", bastion_server=bastion)
    assert bootstrap.bastion_bootstrap_start(server=bastion) is not None
    run_queued("bootstrap_bastion")
    bastion.refresh_from_db()
    assert bastion.status == Server.Status.FAILED, bastion.last_error
    return bastion, sshd


def test_drill_a_failing_bastion_is_fixed_and_bootstrapped_again_from_its_page(
    page, platform_admin, failing_bastion
):
    bastion, sshd = failing_bastion
    stale_error = bastion.last_error
    sign_in_with_password(page, platform_admin)
    page.shots("dashboard")
    # Click 1: the dashboard's failed-job line names the server.
    page.locator("#dash-jobs a.ag-subject", has_text="bastion-prod").click()
    expect(page.locator("#server-status")).to_have_text("failed")
    expect(page.locator("#server-error")).to_contain_text(stale_error[:40])
    expect(page.locator("#server-runs")).to_contain_text("bootstrap_bastion")
    page.shots("server-failed")
    # Click 2: fix the port and save, staying on the page.
    page.fill("#id_ssh_port", str(sshd.port))
    page.locator("input[name=_continue]").click()
    expect(page.locator(".messagelist .success")).to_be_visible()
    assert Server.objects.get(pk=bastion.pk).ssh_port == sshd.port
    # Click 3: bootstrap again; the stale error is gone and the page says it was queued.
    page.locator("#bootstrap-again").click()
    expect(page.locator(".messagelist")).to_contain_text("bootstrap queued")
    expect(page.locator("#server-status")).to_have_text("provisioning")
    expect(page.locator("#server-error")).to_have_count(0)
    page.shots("bootstrap-queued")
    job = JobRun.objects.get(kind="bootstrap_bastion", status=JobRun.Status.QUEUED)

    # Following the run: the header and buttons move with it to its end, no reload.
    page.locator("#follow-bootstrap").click()
    expect(page.locator("#job-status")).to_have_text("Queued")
    worker = _run_in_worker("bootstrap_bastion")
    expect(page.locator("#job-log")).to_contain_text("bootstrap step: packages")
    expect(page.locator("#job-log .log-line .log-time").first).to_have_text(
        re.compile(r"\d\d:\d\d:\d\d\.\d{3}")
    )
    expect(page.locator("#job-log .log-line .log-offset").first).to_have_text(
        re.compile(r"\+\d+\.\d s")
    )
    expect(page.locator("#job-status")).to_have_text("Succeeded", timeout=60_000)
    expect(page.locator("#job-title")).to_contain_text("(succeeded)")
    expect(page.locator("#job-title")).not_to_contain_text("running")
    expect(page.locator("#job-subtitle")).to_contain_text("(succeeded)")
    expect(page.locator(".field-status .readonly")).to_have_text("Succeeded")
    expect(page.locator("#job-cancel")).to_be_hidden()
    expect(page.locator("#job-elapsed")).to_have_text(re.compile(r"\d"))
    page.shots("bootstrap-succeeded")
    worker.join(timeout=60)
    # Search within the log, and its download.
    page.fill("#job-log-search", "sshd")
    expect(page.locator("#job-log-matches")).to_have_text("1 matching line")
    expect(page.locator("#job-log .log-line:visible")).to_have_count(1)
    page.shots("log-search")
    with page.expect_download() as download:
        page.locator("#job-log-download").click()
    text = download.value.path().read_text()
    assert "[stdout] bootstrap complete" in text
    bastion.refresh_from_db()
    assert bastion.status == Server.Status.READY and bastion.last_error == ""
    job.refresh_from_db()
    assert job.status == JobRun.Status.SUCCEEDED, job.error
    # The server's history tells what happened, the job-driven changes included.
    page.goto(f"/admin/infrastructure/server/{bastion.pk}/history/")
    history = page.locator("#change-history")
    expect(history).to_contain_text("ssh_port")
    expect(history).to_contain_text("bootstrap_bastion queued")
    expect(history.locator(".ag-after", has_text="ready")).to_have_count(1)
    page.shots("history")
    assert page.csp_violations == []


def test_drill_a_dns_conflict_is_found_and_understood_from_the_dashboard(page, platform_admin):
    org = OrganizationFactory(name="Acme")
    domain = DomainFactory(organization=org, domain_name="prod.example")
    RecordSetFactory(domain=domain, name="www", status=RecordSet.Status.READY)
    conflict = RecordSetFactory(
        domain=domain,
        name="api",
        owner=RecordSet.Owner.EXTERNAL,
        status=RecordSet.Status.FAILED,
        last_error="api.prod.example A exists in the zone and was not created by Autoglue",
    )
    JobRun.objects.create(
        kind="dns_reconcile",
        organization=org,
        subject_type=JobRun.SubjectType.DOMAIN,
        subject_id=domain.pk,
        status=JobRun.Status.FAILED,
        error="1 record set in conflict",
        finished_at=timezone.now(),
    )
    sign_in_with_password(page, platform_admin)
    # Click 1: the failed reconcile on the dashboard names the domain.
    page.locator("#dash-jobs a.ag-subject", has_text="prod.example").click()
    record_sets = page.locator("#domain-record-sets")
    row = record_sets.locator("tr.record-set", has_text="api")
    expect(row).to_contain_text("External")
    expect(row).to_contain_text("failed")
    expect(row).to_contain_text("not created by Autoglue")
    expect(page.locator("#domain-state")).to_contain_text("dns_reconcile")
    page.shots("domain")
    # Click 2: the record set's own page says who owns it and why it failed.
    row.locator("a").first.click()
    expect(page).to_have_url(re.compile(rf"/admin/dns/recordset/{conflict.pk}/change/"))
    expect(page.locator(".field-owner")).to_contain_text("External")
    expect(page.locator(".field-last_error")).to_contain_text("not created by Autoglue")
    page.shots("record-set")
    assert page.csp_violations == []


def test_every_link_on_the_cluster_and_server_pages_resolves(page, platform_admin):
    org = OrganizationFactory(name="Acme")
    world = cluster_stack(org, "links")
    cluster, bastion, worker = world["cluster"], world["bastion"], world["workers"][0]
    pool, record_set = world["pool"], world["record_set"]
    JobRun.objects.create(
        kind="bootstrap_bastion",
        organization=org,
        subject_type=JobRun.SubjectType.SERVER,
        subject_id=bastion.pk,
        status=JobRun.Status.FAILED,
        finished_at=timezone.now(),
    )
    sign_in_with_password(page, platform_admin)
    checked = set()
    for url in (
        f"/admin/clusters/cluster/{cluster.pk}/change/",
        f"/admin/infrastructure/server/{bastion.pk}/change/",
        f"/admin/infrastructure/server/{worker.pk}/change/",
    ):
        page.goto(url)
        page.shots(url.split("/")[3])
        hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.getAttribute('href'))")
        for href in hrefs:
            if not href or href.startswith(("#", "javascript:", "mailto:")):
                continue
            target = urljoin(page.url, href)
            if target in checked:
                continue
            checked.add(target)
            response = page.request.get(target, max_redirects=0)
            assert response.status == 200, (url, href, response.status)
    # The pages' own relations were among them.
    assert any(str(pool.pk) in link for link in checked)
    assert any(str(record_set.pk) in link for link in checked)
    assert page.csp_violations == []


def test_the_job_page_stops_polling_and_offers_a_reload_when_the_status_answer_is_not_json(
    page, platform_admin
):
    job = JobRun.objects.create(
        kind="bastion_sweep",
        queue="maintenance",
        status=JobRun.Status.RUNNING,
        started_at=timezone.now(),
        attempts=1,
    )
    asked = []

    def signed_out(route):
        # What a session that expired answers: the sign-in page, not the run's status.
        asked.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<html>sign in</html>")

    page.route(re.compile(r".*/jobrun/[0-9a-f-]+/status/$"), signed_out)
    # No live log on this page, so the status poll is what follows the run.
    page.route(re.compile(r".*/jobrun/[0-9a-f-]+/log/stream/.*"), lambda route: route.abort())
    sign_in_with_password(page, platform_admin)
    page.goto(f"/admin/jobs/jobrun/{job.pk}/change/")
    expect(page.locator("#job-reload")).to_be_visible(timeout=10_000)
    page.wait_for_timeout(5_000)
    assert len(asked) == 1, asked
    expect(page.locator("#job-log-zone")).not_to_have_text("your browser's zone")
    page.shots("status-poll-stopped")
    assert page.csp_violations == []

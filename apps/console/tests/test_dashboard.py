"""The console's index: a dashboard of what needs an operator, each figure linking to its rows."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.utils import timezone

from apps.accounts.models import APIKey
from apps.clusters.tests.factories import ClusterFactory
from apps.console.tests.support import job_run
from apps.dns.tests.factories import RecordSetFactory
from apps.infrastructure.tests.factories import ServerFactory


def _stocked(org, other_org):
    ClusterFactory(organization=org, status="ready")
    ClusterFactory(organization=other_org, status="failed")
    for status in ("ready", "ready", "failed"):
        ServerFactory(organization=org, status=status)
    job_run(status="running", started_at=timezone.now())
    job_run(
        status="failed",
        error="CANARY-visible-error: bastion unreachable",
        organization=org,
        finished_at=timezone.now(),
    )
    job_run(status="failed", finished_at=timezone.now() - timedelta(days=3))
    RecordSetFactory(organization=org, status="failed")
    RecordSetFactory(organization=org, owner="external")
    APIKey.objects.create(
        scope="org",
        purpose="org",
        public_id=uuid.uuid4().hex[:16],
        secret_hash="x",
        organization=org,
        expires_at=timezone.now() + timedelta(days=3),
    )


def test_the_dashboard_counts_clusters_servers_jobs_dns_and_expiring_keys(console, org, other_org):
    _stocked(org, other_org)
    board = console.get("/admin/").context["dashboard"]
    assert {(f.label, f.count) for f in board.clusters} == {("Ready", 1), ("Failed", 1)}
    assert {(f.label, f.count) for f in board.servers} == {("Ready", 2), ("Failed", 1)}
    assert board.running_jobs.count == 1
    assert board.failing_jobs.count == 1  # the three-day-old failure is history
    assert [f.count for f in board.dns] == [1, 1]
    assert board.expiring[0].count == 1


def test_every_dashboard_figure_links_to_its_filtered_list(console, org, other_org):
    _stocked(org, other_org)
    response = console.get("/admin/")
    page = response.content.decode()
    assert "/admin/clusters/cluster/?status__exact=failed" in page
    assert "/admin/infrastructure/server/?status__exact=ready" in page
    assert "/admin/jobs/jobrun/?status__exact=failed" in page
    assert "/admin/dns/recordset/?owner__exact=external" in page
    assert "CANARY-visible-error" in page
    # Every figure links to a list.
    board = response.context["dashboard"]
    figures = [*board.clusters, *board.servers, board.running_jobs, board.failing_jobs]
    for figure in [*figures, *board.dns, *board.expiring]:
        listed = console.get(figure.url)
        assert listed.status_code == 200, figure.url
        # The list behind a number holds exactly the rows counted.
        assert listed.context["cl"].result_count == figure.count, figure.url


def test_the_dashboard_says_when_there_is_no_backup_yet(console):
    assert b"No backups yet." in console.get("/admin/").content


def test_the_dashboard_reads_a_bounded_number_of_queries(
    console, org, other_org, django_assert_max_num_queries
):
    _stocked(org, other_org)
    for _ in range(5):
        _stocked(org, other_org)
    # session, user, clusters, servers, job counts, running, failing, DNS, API keys, signing
    # keys, last backup, the queues (runs by queue, oldest waiting): the same whatever the number
    # of rows.
    with django_assert_max_num_queries(15):
        assert console.get("/admin/").status_code == 200


def test_a_member_sees_only_their_organizations_figures(org, other_org, member):
    from django.test import Client

    _stocked(org, other_org)
    alice = Client()
    alice.force_login(member)
    response = alice.get("/admin/")
    board = response.context["dashboard"]
    assert {(f.label, f.count) for f in board.clusters} == {("Ready", 1)}
    assert board.running_jobs.count == 0  # the running job is a platform job
    assert board.failing_jobs.count == 1
    assert [f.label for f in board.expiring] == ["API and org keys"]
    assert b"Last backup" not in response.content


def test_the_dashboard_shows_the_newest_backup(console):
    from django.apps import apps

    backup = apps.get_model("maintenance", "Backup")
    backup.objects.create(bucket="b", object_key="old.dump", key_id="k1", status="succeeded")
    backup.objects.create(bucket="b", object_key="new.dump", key_id="k1", status="failed")
    response = console.get("/admin/")
    assert response.context["dashboard"].last_backup.object_key == "new.dump"
    assert b"No backups yet." not in response.content


def test_a_fresh_admin_with_no_organization_is_offered_to_create_one(console):
    page = console.get("/admin/").content.decode()
    assert "You belong to no organization yet" in page
    assert 'href="/admin/orgs/organization/add/"' in page


def test_the_first_run_prompt_is_gone_once_the_admin_belongs_to_an_organization(
    console, platform_admin, org
):
    from apps.orgs.tests.factories import MembershipFactory

    MembershipFactory(user=platform_admin, organization=org, role="owner")
    assert b"You belong to no organization yet" not in console.get("/admin/").content


def test_the_queue_card_shows_what_readyz_and_the_metrics_see(console, client, monkeypatch):
    import redis
    from django.conf import settings

    from apps.jobs import broker

    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(broker.CONSUMERS_KEY)
    job_run(status="queued", queue="ssh", kind="bootstrap_bastion")
    job_run(status="queued", queue="ssh", kind="bootstrap_bastion")
    broker.consumer_beat(queues=["default", "maintenance"], hostname="worker@console-test")
    monkeypatch.setenv("METRICS_TOKEN", "CANARY-console-metrics")

    response = console.get("/admin/")
    ready = console.get("/api/v1/readyz").json()
    scrape = client.get("/metrics", HTTP_AUTHORIZATION="Bearer CANARY-console-metrics")

    ssh = next(q for q in response.context["queues"] if q.name == "ssh")
    assert (ssh.waiting, ssh.consumers, ssh.unconsumed) == (2, 0, True)
    assert ready["checks"]["queues"] == "no consumer: ssh"
    assert 'autoglue_queue_consumers{queue="ssh"} 0.0' in scrape.content.decode()
    assert b"no worker" in response.content
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(broker.CONSUMERS_KEY)

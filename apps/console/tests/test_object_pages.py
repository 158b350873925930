"""The console's object pages: a cluster with its bastion, pools, servers, attachments, metadata
and runs; a server with its bootstrap runs and "Bootstrap again"; a domain with its record sets
and last reconcile; job lists that name their subjects; history pages with before and after
values; and the job page's status and log download."""

from __future__ import annotations

import datetime
import re

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.clusters.models import ClusterNodePool, ClusterRun, NodePoolServer
from apps.clusters.tests.factories import (
    ActionFactory,
    ClusterFactory,
    ClusterRunFactory,
    NodePoolFactory,
)
from apps.console.tests.support import cluster_stack, job_run
from apps.dns.tests.factories import RecordSetFactory
from apps.infrastructure import bootstrap
from apps.infrastructure.models import Server
from apps.infrastructure.tests.factories import ServerFactory
from apps.jobs.logs import LogWriter
from apps.jobs.models import JobRun
from apps.orgs.tests.admin_support import console_for, staff_of

pytestmark = pytest.mark.django_db


def _links(html: str) -> set[str]:
    return set(re.findall(r'href="(/admin/[^"#?]*)', html))


@pytest.fixture
def stack(org):
    """A cluster with a failed bastion, a pool of two workers, a domain and a record set."""
    world = cluster_stack(org)
    cluster, bastion = world["cluster"], world["bastion"]
    run = ClusterRunFactory(
        cluster=cluster,
        action_ref=ActionFactory(label="Upgrade"),
        action="upgrade",
        status=ClusterRun.Status.RUNNING,
    )
    job = job_run(
        kind="bootstrap_bastion",
        queue="ssh",
        organization=org,
        subject_type=JobRun.SubjectType.SERVER,
        subject_id=bastion.pk,
        status=JobRun.Status.FAILED,
        error="connection refused on port 2222",
        finished_at=timezone.now(),
    )
    return {**world, "run": run, "job": job}


def test_a_cluster_page_shows_its_bastion_pools_servers_attachments_metadata_and_runs(
    console, stack, django_assert_max_num_queries
):
    cluster = stack["cluster"]
    with django_assert_max_num_queries(40):
        page = console.get(f"/admin/clusters/cluster/{cluster.pk}/change/")
    html = page.content.decode()
    assert page.status_code == 200
    links = _links(html)
    for obj in (stack["bastion"], *stack["workers"], stack["pool"], stack["domain"]):
        assert any(str(obj.pk) in link for link in links), obj
    assert f"/admin/dns/recordset/{stack['record_set'].pk}/change/" in links
    assert f"/admin/infrastructure/loadbalancer/{stack['lb'].pk}/change/" in links
    assert f"/admin/jobs/jobrun/{stack['job'].pk}/change/" in links  # the bastion's last bootstrap
    assert "connection refused on port 2222" in html
    assert "worker-1" in html and "worker-2" in html and "team" in html and "platform" in html
    assert "upgrade" in html and f"cancel-run-{stack['run'].pk}" in html
    assert 'id="run-action"' in html


def test_object_pages_give_run_times_and_the_last_reconcile_as_local_time_elements(console, stack):
    """The times on object pages are `<time datetime="…Z">` elements, which localtime.js shows
    in the viewer's time zone with the zone named (as the lists do)."""
    cluster, domain = stack["cluster"], stack["domain"]
    run = stack["run"]
    Domain = type(domain)
    Domain.objects.filter(pk=domain.pk).update(last_reconciled_at=run.created_at)
    page = console.get(f"/admin/clusters/cluster/{cluster.pk}/change/").content.decode()
    stamp = run.created_at.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")
    assert f'<time datetime="{stamp}">' in page
    page = console.get(f"/admin/dns/domain/{domain.pk}/change/").content.decode()
    assert f'<time datetime="{stamp}">' in page


def _queries(client, url: str) -> int:
    """How many queries a page reads (after one warm-up request)."""
    client.get(url)
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured.captured_queries)


def test_the_cluster_page_reads_the_same_number_of_queries_for_more_servers(console, stack, org):
    url = f"/admin/clusters/cluster/{stack['cluster'].pk}/change/"
    few = _queries(console, url)
    for n in range(10):
        worker = ServerFactory(organization=org, hostname=f"extra-{n}")
        NodePoolServer.objects.create(organization=org, node_pool=stack["pool"], server=worker)
    assert _queries(console, url) == few
    assert "extra-9" in console.get(url).content.decode()


def test_server_and_domain_pages_read_the_same_number_of_queries_for_more_relations(
    console, stack, org
):
    worker, domain = stack["workers"][0], stack["domain"]
    server_url = f"/admin/infrastructure/server/{worker.pk}/change/"
    domain_url = f"/admin/dns/domain/{domain.pk}/change/"
    few = (_queries(console, server_url), _queries(console, domain_url))
    for n in range(5):
        pool = NodePoolFactory(organization=org, name=f"pool-{n}")
        NodePoolServer.objects.create(organization=org, node_pool=pool, server=worker)
        cluster = ClusterFactory(organization=org, name=f"c-{n}")
        ClusterNodePool.objects.create(organization=org, cluster=cluster, node_pool=pool)
        RecordSetFactory(domain=domain, name=f"r{n}")
    assert (_queries(console, server_url), _queries(console, domain_url)) == few


def test_a_cluster_run_is_canceled_from_the_cluster_page(console, stack):
    cluster, run = stack["cluster"], stack["run"]
    response = console.post(
        f"/admin/clusters/cluster/{cluster.pk}/runs/{run.pk}/cancel/", follow=True
    )
    assert response.status_code == 200
    run.refresh_from_db()
    assert run.status == ClusterRun.Status.CANCELED
    assert "cancel requested" in response.content.decode()


def test_an_action_is_started_from_the_cluster_page_through_the_run_service(console, stack):
    cluster = stack["cluster"]
    action = ActionFactory(label="Smoke test", make_target="smoke")
    page = console.get(f"/admin/clusters/cluster/{cluster.pk}/run-action/")
    assert page.status_code == 200 and "Smoke test" in page.content.decode()
    # While a run is active the service refuses another, and the page says so.
    response = console.post(
        f"/admin/clusters/cluster/{cluster.pk}/run-action/",
        {"catalogue_action": str(action.pk)},
        follow=True,
    )
    assert response.status_code == 200 and "already has an active run" in response.content.decode()
    ClusterRun.objects.filter(pk=stack["run"].pk).update(status=ClusterRun.Status.SUCCEEDED)
    response = console.post(
        f"/admin/clusters/cluster/{cluster.pk}/run-action/",
        {"catalogue_action": str(action.pk)},
        follow=True,
    )
    assert response.status_code == 200
    run = ClusterRun.objects.get(cluster=cluster, action_ref=action)
    assert run.job_id and "Follow its log" in response.content.decode()


def test_the_kubeconfig_downloads_from_the_cluster_page_for_roles_that_may_reveal_it(
    stack, org, console
):
    cluster = stack["cluster"]
    cluster.kubeconfig = "apiVersion: v1\n# CANARY-kubeconfig\n"
    cluster.save()
    page = console.get(f"/admin/clusters/cluster/{cluster.pk}/change/")
    assert 'id="kubeconfig"' in page.content.decode()
    response = console.post(f"/admin/clusters/cluster/{cluster.pk}/kubeconfig/")
    assert response.status_code == 200 and b"CANARY-kubeconfig" in response.content
    assert "no-store" in response["Cache-Control"]
    assert LogEntry.objects.filter(object_id=str(cluster.pk)).exists()
    member = console_for(staff_of(org, "member", "mia@acme.example"))
    page = member.get(f"/admin/clusters/cluster/{cluster.pk}/change/")
    assert 'id="kubeconfig"' not in page.content.decode()
    assert member.post(f"/admin/clusters/cluster/{cluster.pk}/kubeconfig/").status_code == 403


def test_a_viewer_sees_the_cluster_page_without_its_buttons_and_cannot_post_them(stack, org):
    viewer = console_for(staff_of(org, "viewer", "vic@acme.example"))
    cluster, run = stack["cluster"], stack["run"]
    html = viewer.get(f"/admin/clusters/cluster/{cluster.pk}/change/").content.decode()
    assert "worker-1" in html
    assert 'id="run-action"' not in html and f"cancel-run-{run.pk}" not in html
    assert viewer.get(f"/admin/clusters/cluster/{cluster.pk}/run-action/").status_code == 403
    cancel = f"/admin/clusters/cluster/{cluster.pk}/runs/{run.pk}/cancel/"
    assert viewer.post(cancel).status_code == 403
    run.refresh_from_db()
    assert run.status == ClusterRun.Status.RUNNING


def test_a_server_page_shows_its_bootstrap_runs_and_the_pools_and_clusters_it_is_in(console, stack):
    bastion, worker = stack["bastion"], stack["workers"][0]
    html = console.get(f"/admin/infrastructure/server/{bastion.pk}/change/").content.decode()
    assert f"/admin/jobs/jobrun/{stack['job'].pk}/change/" in html
    assert f"/admin/clusters/cluster/{stack['cluster'].pk}/change/" in html  # bastion of
    assert 'id="bootstrap-again"' in html
    html = console.get(f"/admin/infrastructure/server/{worker.pk}/change/").content.decode()
    assert f"/admin/clusters/nodepool/{stack['pool'].pk}/change/" in html
    assert f"/admin/clusters/cluster/{stack['cluster'].pk}/change/" in html  # through the pool
    assert 'id="bootstrap-again"' not in html  # workers are not bootstrapped from here


def test_bootstrap_again_clears_the_stale_error_queues_a_run_and_says_so(console, stack):
    bastion = stack["bastion"]
    response = console.post(f"/admin/infrastructure/server/{bastion.pk}/bootstrap/", follow=True)
    html = response.content.decode()
    assert response.status_code == 200
    assert "bootstrap queued" in html and 'id="follow-bootstrap"' in html
    bastion.refresh_from_db()
    assert bastion.status == Server.Status.PROVISIONING and bastion.last_error == ""
    job = JobRun.objects.get(kind="bootstrap_bastion", status=JobRun.Status.QUEUED)
    assert job.subject_id == bastion.pk
    # The page it comes back to shows the new state, not the old error.
    assert "connection refused on port 2222" not in html.split('id="server-runs"')[0]


def test_a_domain_page_shows_its_record_sets_their_ownership_and_the_last_reconcile(
    console, stack, org
):
    domain = stack["domain"]
    reconcile = job_run(
        kind="dns_reconcile",
        organization=org,
        subject_type=JobRun.SubjectType.DOMAIN,
        subject_id=domain.pk,
        status=JobRun.Status.FAILED,
        error="conflict: api A exists in the zone",
        finished_at=timezone.now(),
    )
    html = console.get(f"/admin/dns/domain/{domain.pk}/change/").content.decode()
    assert f"/admin/dns/recordset/{stack['record_set'].pk}/change/" in html
    assert "External" in html and "record exists and is not ours" in html
    assert f"/admin/jobs/jobrun/{reconcile.pk}/change/" in html
    assert f"/admin/clusters/cluster/{stack['cluster'].pk}/change/" in html


def test_job_lists_name_subjects_by_hostname_and_find_them_by_it(
    console, stack, org, django_assert_max_num_queries
):
    for n in range(20):
        server = ServerFactory(organization=org, hostname=f"edge-{n}", role=Server.Role.BASTION)
        job_run(
            kind="bootstrap_bastion",
            organization=org,
            subject_type=JobRun.SubjectType.SERVER,
            subject_id=server.pk,
        )
    with django_assert_max_num_queries(12):
        page = console.get("/admin/jobs/jobrun/")
    html = page.content.decode()
    assert "server bastion-prod" in html and "server edge-19" in html
    assert f"server {stack['bastion'].pk}" not in html
    found = console.get("/admin/jobs/jobrun/?q=bastion-prod").context["cl"].result_list
    assert [job.pk for job in found] == [stack["job"].pk]
    runs = ClusterRun.objects.filter(pk=stack["run"].pk)
    job = job_run(
        kind="cluster_action",
        organization=org,
        subject_type=JobRun.SubjectType.CLUSTER_RUN,
        subject_id=runs.get().pk,
    )
    found = console.get("/admin/jobs/jobrun/?q=prod: upgrade").context["cl"].result_list
    assert [j.pk for j in found] == [job.pk]


def test_history_shows_before_and_after_values_and_secrets_only_as_changed(console, org):
    server = ServerFactory(organization=org, hostname="bastion-h", role=Server.Role.BASTION)
    server.ssh_port = 2222
    server.save()
    cluster = ClusterFactory(organization=org, name="hist")
    cluster.kubeconfig = "CANARY-history-kubeconfig"
    cluster.save()
    html = console.get(f"/admin/infrastructure/server/{server.pk}/history/").content.decode()
    assert re.search(
        r"ssh_port</th><td><span class=\"ag-before\">22</span> → "
        r"<span class=\"ag-after\">2222</span>",
        html,
    ), html
    html = console.get(f"/admin/clusters/cluster/{cluster.pk}/history/").content.decode()
    assert "kubeconfig</th><td><em>changed</em>" in html
    assert "CANARY-history-kubeconfig" not in html


def test_history_shows_bootstraps_the_sweep_started_and_what_the_job_did(console, org):
    server = ServerFactory(
        organization=org,
        hostname="bastion-s",
        role=Server.Role.BASTION,
        status=Server.Status.PENDING,
    )
    bootstrap.bastion_sweep()
    job = JobRun.objects.get(subject_id=server.pk)
    bootstrap.bootstrap_failed(job, "failed", "ssh: connection refused")
    html = console.get(f"/admin/infrastructure/server/{server.pk}/history/").content.decode()
    assert "bootstrap_bastion queued" in html
    assert f"/admin/jobs/jobrun/{job.pk}/change/" in html
    assert re.search(
        r"status</th><td><span class=\"ag-before\">pending</span> → "
        r"<span class=\"ag-after\">provisioning</span>",
        html,
    )
    assert re.search(
        r"<span class=\"ag-before\">provisioning</span> → "
        r"<span class=\"ag-after\">failed</span>",
        html,
    )
    assert "ssh: connection refused" in html


def test_the_job_page_status_follows_the_run_and_its_log_downloads_as_text(console, org):
    job = job_run(
        kind="bootstrap_bastion",
        organization=org,
        status=JobRun.Status.RUNNING,
        started_at=timezone.now(),
    )
    writer = LogWriter(job)
    writer.system("connecting to 127.0.0.1")
    writer.write("stdout", "step 1\nstep 2\n")
    writer.flush()
    state = console.get(f"/admin/jobs/jobrun/{job.pk}/status/").json()
    assert state["status"] == "running" and state["active"] and state["can_cancel"]
    job.status, job.finished_at = JobRun.Status.SUCCEEDED, timezone.now()
    job.save()
    state = console.get(f"/admin/jobs/jobrun/{job.pk}/status/").json()
    assert state["status"] == "succeeded" and not state["active"] and not state["can_cancel"]
    response = console.get(f"/admin/jobs/jobrun/{job.pk}/log/download/")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) == 3
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \+\d+\.\ds \[stdout\] step 2", lines[2]
    )


def test_a_viewer_may_not_download_a_log(org):
    viewer = console_for(staff_of(org, "viewer", "vic@acme.example"))
    job = job_run(organization=org, status=JobRun.Status.SUCCEEDED)
    assert viewer.get(f"/admin/jobs/jobrun/{job.pk}/log/download/").status_code == 403
    assert viewer.get(f"/admin/jobs/jobrun/{job.pk}/status/").status_code == 200

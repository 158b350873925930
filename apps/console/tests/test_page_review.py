"""The review of the object pages, history and job log: who sees the audit history, which
indexes the history reads, a log download that streams, guarded re-bootstrap, subject search,
relations in history, and attachments read inside the organization."""

from __future__ import annotations

import datetime
import re
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.audit.selectors import object_history
from apps.clusters.models import Cluster, ClusterNodePool, NodePoolServer
from apps.clusters.tests.factories import ClusterFactory, ClusterMetadataFactory, NodePoolFactory
from apps.console.tests.support import cluster_stack, job_run
from apps.dns.tests.factories import DomainFactory
from apps.infrastructure.models import Server
from apps.infrastructure.tests.factories import ServerFactory
from apps.jobs.logs import LogWriter
from apps.jobs.models import JobRun
from apps.jobs.subjects import runs_of_subjects_named
from apps.orgs.tests.admin_support import console_for, staff_of
from apps.orgs.tests.factories import OrganizationFactory

pytestmark = pytest.mark.django_db


def test_viewers_and_members_see_djangos_history_not_the_audit_log(org):
    server = ServerFactory(organization=org, hostname="bastion-v", role=Server.Role.BASTION)
    server.ssh_port = 2200
    server.save()
    url = f"/admin/infrastructure/server/{server.pk}/history/"
    for role, email in (("viewer", "vic@acme.example"), ("member", "mia@acme.example")):
        html = console_for(staff_of(org, role, email)).get(url).content.decode()
        assert "audit-entry" not in html and "ssh_port" not in html, role
    admin = console_for(staff_of(org, "admin", "ada@acme.example"))
    assert "ssh_port" in admin.get(url).content.decode()


def test_an_objects_history_is_read_through_its_two_indexes_not_the_organizations_entries(org):
    server = ServerFactory(organization=org, hostname="bastion-i", role=Server.Role.BASTION)
    server.ssh_port = 2201
    server.save()
    with CaptureQueriesContext(connection) as captured:
        entries = object_history(
            object_type="infrastructure.server", object_id=server.pk, organization_id=org.pk
        )
    assert entries
    reads = [q["sql"] for q in captured.captured_queries if "audit_auditentry" in q["sql"]]
    # An organization with a long audit log about other objects, and statistics that know it.
    now = timezone.now()
    AuditEntry.objects.bulk_create(
        AuditEntry(
            chain=str(org.pk),
            occurred_at=now - datetime.timedelta(seconds=n),
            organization_id=org.pk,
            event="infrastructure.server.update",
            actor_type=AuditEntry.ActorType.SYSTEM,
            object_type="infrastructure.server",
            object_id=str(uuid.uuid4()),
            metadata={"subject_id": str(uuid.uuid4())},
        )
        for n in range(3000)
    )
    plans = []
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audit_auditentry")
        cursor.execute("SET LOCAL enable_seqscan = off")
        for sql in reads:
            cursor.execute(f"EXPLAIN {sql}")
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
    assert len(plans) == 2, reads
    assert "audit_entry_org_object_time" in plans[0], plans[0]
    assert "audit_entry_launch_subject" in plans[1], plans[1]


def test_a_long_log_downloads_as_a_stream_with_every_line_in_order(console, org):
    job = job_run(kind="bootstrap_bastion", organization=org, status=JobRun.Status.SUCCEEDED)
    writer = LogWriter(job)
    for n in range(3000):
        writer.write("stdout", f"line {n}\n")
    writer.flush()
    response = console.get(f"/admin/jobs/jobrun/{job.pk}/log/download/")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/plain")
    assert "no-store" in response["Cache-Control"]
    assert (
        response["Content-Disposition"] == f'attachment; filename="bootstrap_bastion-{job.pk}.log"'
    )
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert len(lines) == 3000
    assert lines[0].endswith("[stdout] line 0") and lines[-1].endswith("[stdout] line 2999")


def test_searching_runs_by_a_name_finds_the_subjects_first_not_the_name_of_every_run(org):
    server = ServerFactory(organization=org, hostname="bastion-q", role=Server.Role.BASTION)
    mine = job_run(organization=org, subject_type=JobRun.SubjectType.SERVER, subject_id=server.pk)
    other_org = OrganizationFactory()
    theirs = ServerFactory(organization=other_org, hostname="bastion-q2")
    job_run(organization=org, subject_type=JobRun.SubjectType.SERVER, subject_id=theirs.pk)
    found = runs_of_subjects_named(JobRun.objects.all(), "BASTION-Q", [org.pk])
    assert [job.pk for job in found] == [mine.pk]
    # No subquery correlated with each run: the subjects are matched by id.
    assert '= ("jobs_jobrun"."subject_id")' not in str(found.query)


def test_a_cluster_page_shows_no_attachment_of_another_organization(console, org):
    stack = cluster_stack(org)
    cluster = stack["cluster"]
    foreign = DomainFactory(organization=OrganizationFactory(), domain_name="theirs.example")
    # A row that should never exist, written past the services' checks.
    Cluster.objects.filter(pk=cluster.pk).update(captain_domain=foreign)
    html = console.get(f"/admin/clusters/cluster/{cluster.pk}/change/").content.decode()
    assert "/admin/clusters/cluster/" in html
    assert f"/admin/dns/domain/{foreign.pk}/change/" not in html


def _store_kubeconfig(cluster: Cluster, stored: str) -> None:
    """Writes the column itself (what a save would have encrypted)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE clusters_cluster SET kubeconfig = %s WHERE id = %s", [stored, cluster.pk]
        )


def test_a_cluster_page_view_never_decrypts_the_kubeconfig(org):
    stack = cluster_stack(org)
    cluster = stack["cluster"]
    # An envelope no key opens: any decryption on the way makes the page fail.
    _store_kubeconfig(cluster, "v1:broken:envelope")
    url = f"/admin/clusters/cluster/{cluster.pk}/change/"
    member = console_for(staff_of(org, "member", "mia@acme.example"))
    response = member.get(url)
    assert response.status_code == 200 and 'id="kubeconfig"' not in response.content.decode()
    owner = console_for(staff_of(org, "owner", "olga@acme.example"))
    response = owner.get(url)
    assert response.status_code == 200 and 'id="kubeconfig"' in response.content.decode()
    _store_kubeconfig(cluster, "")
    assert 'id="kubeconfig"' not in owner.get(url).content.decode()


def test_a_ready_bastion_is_re_bootstrapped_only_through_a_confirmation_page(console, org):
    bastion = ServerFactory(
        organization=org, hostname="bastion-ok", role=Server.Role.BASTION, status="ready"
    )
    page = console.get(f"/admin/infrastructure/server/{bastion.pk}/change/").content.decode()
    confirm = f"/admin/infrastructure/server/{bastion.pk}/bootstrap/confirm/"
    button = re.search(r'<a class="button" href="([^"]+)" id="bootstrap-again">([^<]+)</a>', page)
    assert button and button.groups() == (confirm, "Re-bootstrap")
    # Posting straight to the bootstrap asks first and starts nothing.
    response = console.post(f"/admin/infrastructure/server/{bastion.pk}/bootstrap/")
    assert response.status_code == 302 and response["Location"] == confirm
    assert not JobRun.objects.filter(subject_id=bastion.pk).exists()
    html = console.get(confirm).content.decode()
    assert 'id="confirm-rebootstrap"' in html and 'name="confirmed" value="yes"' in html
    response = console.post(
        f"/admin/infrastructure/server/{bastion.pk}/bootstrap/", {"confirmed": "yes"}, follow=True
    )
    assert "bootstrap queued" in response.content.decode()
    bastion.refresh_from_db()
    assert bastion.status == Server.Status.PROVISIONING
    assert JobRun.objects.filter(subject_id=bastion.pk, kind="bootstrap_bastion").count() == 1


def test_a_failed_bastion_keeps_bootstrap_again_as_the_pages_main_button(console, org):
    bastion = ServerFactory(
        organization=org, hostname="bastion-bad", role=Server.Role.BASTION, status="failed"
    )
    page = console.get(f"/admin/infrastructure/server/{bastion.pk}/change/").content.decode()
    assert 'class="button default" id="bootstrap-again">Bootstrap again<' in page
    viewer = console_for(staff_of(org, "viewer", "vic@acme.example"))
    confirm = f"/admin/infrastructure/server/{bastion.pk}/bootstrap/confirm/"
    assert viewer.get(confirm).status_code == 403


def test_times_on_history_and_job_pages_name_the_zone_and_read_the_same_after_the_run(
    console, org, settings
):
    settings.TIME_ZONE = "Europe/Berlin"
    server = ServerFactory(organization=org, hostname="bastion-z", role=Server.Role.BASTION)
    server.ssh_port = 2202
    server.save()
    html = console.get(f"/admin/infrastructure/server/{server.pk}/history/").content.decode()
    assert "when (CET)" in html and "when (UTC)" not in html
    started = datetime.datetime(2026, 12, 5, 9, 30, tzinfo=datetime.UTC)
    job = job_run(
        organization=org,
        status=JobRun.Status.SUCCEEDED,
        started_at=started,
        finished_at=started + datetime.timedelta(minutes=2),
    )
    page = console.get(f"/admin/jobs/jobrun/{job.pk}/change/").content.decode()
    assert '<span id="job-zone">CET</span>' in page
    state = console.get(f"/admin/jobs/jobrun/{job.pk}/status/").json()
    # What the poll writes into the fields is what the page itself shows: the same <time>
    # element (ISO moment, UTC text), which localtime.js shows in the viewer's zone.
    for name in ("started_at", "finished_at"):
        text, iso = state[f"{name}_text"], state[name]
        assert text.startswith("2026-12-05 09:3") and text.endswith(" UTC")
        element = f'<time datetime="{iso}">{text}</time>'
        assert re.search(
            rf'field-{name}.*?<div class="readonly">{re.escape(element)}</div>', page, re.DOTALL
        ), (name, element)


def test_cluster_and_server_history_include_pool_attachments_and_metadata_changes(console, org):
    cluster = ClusterFactory(organization=org, name="hist-rel")
    pool = NodePoolFactory(organization=org, name="pool-rel")
    server = ServerFactory(organization=org, hostname="worker-rel")
    attached = ClusterNodePool.objects.create(organization=org, cluster=cluster, node_pool=pool)
    member = NodePoolServer.objects.create(organization=org, node_pool=pool, server=server)
    meta = ClusterMetadataFactory(organization=org, cluster=cluster, key="team", value="red")
    meta.value = "blue"
    meta.save()
    attached.delete()
    member.delete()
    html = console.get(f"/admin/clusters/cluster/{cluster.pk}/history/").content.decode()
    # The attachment made and removed, and the metadata value before -> after.
    assert html.count(f'<span class="ag-after">{pool.pk}</span>') == 1, html
    assert html.count(f'<span class="ag-before">{pool.pk}</span>') == 1
    assert re.search(
        r'value</th><td><span class="ag-before">red</span> → <span class="ag-after">blue</span>',
        html,
    )
    html = console.get(f"/admin/infrastructure/server/{server.pk}/history/").content.decode()
    assert html.count(f'<span class="ag-after">{pool.pk}</span>') == 1
    assert html.count(f'<span class="ag-before">{pool.pk}</span>') == 1

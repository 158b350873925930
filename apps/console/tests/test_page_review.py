"""The review of the object pages, history and job log: who sees the audit history, which
indexes the history reads, a log download that streams, guarded re-bootstrap, subject search,
relations in history, and attachments read inside the organization."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.selectors import object_history
from apps.console.tests.support import job_run
from apps.infrastructure.models import Server
from apps.infrastructure.tests.factories import ServerFactory
from apps.jobs.logs import LogWriter
from apps.jobs.models import JobRun
from apps.orgs.tests.admin_support import console_for, staff_of

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
    plans = []
    with connection.cursor() as cursor:
        # A test table is tiny: without this the planner reads it whole whatever the indexes.
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

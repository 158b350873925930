"""Names are one line: a cluster, node pool, key, credential or load balancer name with a line
break, a terminal escape or a bidirectional override is refused (API and console), and values in
the jobs' own log lines are quoted, so a stored name cannot forge a line of a transcript."""

from __future__ import annotations

import pytest

from apps.clusters.models import Cluster, NodePool
from apps.clusters.tests.factories import ClusterFactory, NodePoolFactory
from apps.infrastructure import bootstrap
from apps.infrastructure.models import Server
from apps.infrastructure.tests.factories import ServerFactory
from apps.jobs.models import JobLog, JobRun
from apps.jobs.tests.support import run_queued
from apps.orgs.tests.admin_support import console_for, form_data, form_errors, staff_of

FORGED = [
    "prod\njob succeeded in 0.1 s",
    "prod\r\nbastion ready",
    "prod\u2028next line",
    "prod\x1b[2Kready",
    "prod\u202eevil",
    "prod\tstaging",
]


@pytest.mark.django_db
@pytest.mark.parametrize("name", FORGED)
def test_a_name_that_would_break_a_log_line_is_refused_on_every_named_resource(api, org, name):
    cluster = ClusterFactory(organization=org)
    pool = NodePoolFactory(organization=org)
    requests = [
        ("post", "/api/v1/clusters", {"name": name}),
        ("patch", f"/api/v1/clusters/{cluster.pk}", {"name": name}),
        ("post", "/api/v1/node-pools", {"name": name}),
        ("patch", f"/api/v1/node-pools/{pool.pk}", {"name": name}),
        ("post", "/api/v1/ssh", {"name": name, "type": "ed25519"}),
        ("post", "/api/v1/load-balancers", {"name": name, "kind": "public"}),
    ]
    for method, url, body in requests:
        response = getattr(api, method)(url, body, format="json")
        assert response.status_code == 400, (url, response.content)
        assert response.json()["message"].startswith("name: "), url
    assert not Cluster.objects.exclude(pk=cluster.pk).exists()
    assert Cluster.objects.get(pk=cluster.pk).name == cluster.name
    assert NodePool.objects.get(pk=pool.pk).name == pool.name


@pytest.mark.django_db
def test_the_console_refuses_a_cluster_name_with_a_line_break(org):
    alice = console_for(staff_of(org, "owner", "alice@acme.example"))
    cluster = ClusterFactory(organization=org, name="prod")
    url = f"/admin/clusters/cluster/{cluster.pk}/change/"
    data = form_data(alice.get(url))
    data["name"] = "prod\njob succeeded in 0.1 s"

    response = alice.post(url, data)

    assert "name" in form_errors(response)
    cluster.refresh_from_db()
    assert cluster.name == "prod"


@pytest.mark.django_db(transaction=True)
def test_a_stored_name_with_a_line_break_cannot_forge_a_line_of_the_transcript(org):
    # Written around the API (an old row); the job quotes it and refuses the server.
    server = ServerFactory(
        organization=org,
        role=Server.Role.BASTION,
        status=Server.Status.PENDING,
        public_ip_address="203.0.113.9",
    )
    Server.objects.filter(pk=server.pk).update(hostname="evil\njob succeeded in 0.1 s")
    bootstrap.bastion_sweep()

    assert run_queued() == [JobRun.Status.FAILED]

    transcript = "".join(
        JobLog.objects.filter(subject_id=server.pk).order_by("id").values_list("chunk", flat=True)
    )
    lines = transcript.splitlines()
    assert "job succeeded in 0.1 s" not in lines
    assert f'claimed bastion "evil\\njob succeeded in 0.1 s" ({server.pk})' in lines
    assert all(line.startswith(("claimed bastion", "job failed")) for line in lines)

"""Who reads job transcripts: roles that can already obtain the secrets a job holds (owners,
admins, members, org keys), never viewers (docs/jobs.md, docs/console-permissions.md)."""

from __future__ import annotations

import pytest

from apps.clusters.tests.factories import ClusterFactory, ClusterRunFactory
from apps.infrastructure.tests.factories import ServerFactory
from apps.jobs.models import JobLog, JobRun

pytestmark = pytest.mark.django_db


def _transcripts(org) -> list[str]:
    server = ServerFactory(organization=org, role="bastion", public_ip_address="203.0.113.9")
    run = ClusterRunFactory(cluster=ClusterFactory(organization=org), status="succeeded")
    for subject_type, subject in (("server", server), ("cluster_run", run)):
        job = JobRun.objects.create(
            kind="bootstrap_bastion" if subject_type == "server" else "cluster_action",
            queue="ssh",
            organization=org,
            subject_type=subject_type,
            subject_id=subject.pk,
            status="succeeded",
        )
        JobLog.objects.create(
            job=job,
            organization_id=org.pk,
            subject_type=subject_type,
            subject_id=subject.pk,
            stream="stdout",
            chunk="CANARY-transcript\n",
        )
    base = f"/api/v1/clusters/{run.cluster_id}/runs/{run.pk}"
    return [
        f"/api/v1/servers/{server.pk}/logs",
        f"/api/v1/servers/{server.pk}/logs/stream",
        f"{base}/logs",
        f"{base}/logs/stream",
    ]


def test_a_viewer_cannot_read_bootstrap_or_run_logs(client_for, viewer, org):
    bob = client_for(viewer, org)
    for url in _transcripts(org):
        response = bob.get(url)
        assert response.status_code == 403, url
        assert response.json()["code"] == "forbidden"


def test_members_and_org_keys_read_bootstrap_and_run_logs(client_for, member, org, org_key_client):
    for client in (client_for(member, org), org_key_client(org)):
        for url in _transcripts(org)[::2]:
            response = client.get(url)
            assert response.status_code == 200, url
            assert response.json()["items"][0]["chunk"] == "CANARY-transcript\n"

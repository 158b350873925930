"""A cluster action runs through a real bastion sshd into a real node sshd on loopback, with a
stand-in `docker` on the bastion (apps.jobs.tests.support) playing the tooling image."""

from __future__ import annotations

import json
import threading
import time

import pytest

from apps.accounts.models import APIKey
from apps.clusters.models import Cluster, ClusterRun
from apps.jobs import runner
from apps.jobs.models import JobLog, JobRun
from apps.jobs.tests.support import cluster_ready_for_actions, fake_docker, run_queued

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def hosts(sshd_factory):
    return sshd_factory(home=True), sshd_factory(home=True)


@pytest.fixture(autouse=True)
def _stand_in_docker(settings, tmp_path):
    settings.CLUSTER_ACTION_DOCKER = str(fake_docker(tmp_path))
    settings.JOB_HEARTBEAT_SECONDS = 0.2


def _start_run(api, cluster, action) -> dict:
    response = api.post(f"/api/v1/clusters/{cluster.pk}/actions/{action.pk}/runs")
    assert response.status_code == 201, response.content
    return response.json()


def _transcript(run_id) -> str:
    rows = JobLog.objects.filter(subject_type="cluster_run", subject_id=run_id).order_by("id")
    return "".join(row.chunk for row in rows)


def test_an_action_runs_on_the_node_through_the_bastion_and_the_run_succeeds(org, api, hosts):
    bastion_sshd, node_sshd = hosts
    cluster, action, node = cluster_ready_for_actions(
        org, bastion_sshd=bastion_sshd, node_sshd=node_sshd
    )
    run = _start_run(api, cluster, action)
    assert run["status"] == "queued"

    assert run_queued() == [JobRun.Status.SUCCEEDED]

    assert (node_sshd.home / "marker").read_text() == "deploy\n"
    body = api.get(f"/api/v1/clusters/{cluster.pk}/runs/{run['id']}").json()
    assert body["status"] == "succeeded" and body["finished_at"]
    cluster.refresh_from_db()
    assert (cluster.status, cluster.last_error) == (Cluster.Status.READY, "")
    text = _transcript(run["id"])
    assert "running make ping-servers" in text and "ping node-1 ok" in text
    assert "ran deploy on node-1" in text and "make deploy completed" in text
    logs = api.get(f"/api/v1/clusters/{cluster.pk}/runs/{run['id']}/logs").json()
    assert logs["done"] is True and "".join(i["chunk"] for i in logs["items"]) == text


def test_the_bastion_receives_keys_config_and_payload_with_mode_600(org, api, hosts):
    bastion_sshd, node_sshd = hosts
    cluster, action, node = cluster_ready_for_actions(
        org, bastion_sshd=bastion_sshd, node_sshd=node_sshd
    )
    _start_run(api, cluster, action)
    run_queued()

    home = bastion_sshd.home
    key_file = home / ".ssh/autoglue/keys" / f"{node.ssh_key_id}.pem"
    payload_file = home / f"autoglue/clusters/{cluster.pk}/payload.json"
    config_file = home / f".ssh/autoglue/cluster-{cluster.pk}.config"
    for path in (key_file, payload_file, config_file):
        assert path.stat().st_mode & 0o777 == 0o600, path
    assert key_file.read_text() == node.ssh_key.private_key
    payload = json.loads(payload_file.read_text())
    assert payload["id"] == str(cluster.pk)
    assert payload["kubeconfig"] == "CANARY-KUBECONFIG-apiVersion: v1"
    assert payload["random_token"] == cluster.random_token
    assert payload["org_key"].startswith("org_") and payload["org_secret"]
    key = APIKey.objects.get(cluster_id=cluster.pk, purpose="cluster_bastion")
    assert key.is_ephemeral and key.expires_at is not None
    assert f"Port {node_sshd.port}" in config_file.read_text()


def test_the_bastions_key_reaches_only_the_runs_cluster_even_for_an_unscoped_starter(
    org, api, hosts
):
    """The org key handed to the bastion acts for its cluster alone: another cluster of the
    organization is 404, servers and attachments are 403."""
    from rest_framework.test import APIClient

    from apps.clusters.tests.factories import ClusterFactory

    bastion_sshd, node_sshd = hosts
    cluster, action, node = cluster_ready_for_actions(
        org, bastion_sshd=bastion_sshd, node_sshd=node_sshd
    )
    other = ClusterFactory(organization=org)
    _start_run(api, cluster, action)
    run_queued()

    payload = json.loads(
        (bastion_sshd.home / f"autoglue/clusters/{cluster.pk}/payload.json").read_text()
    )
    tooling = APIClient()
    tooling.credentials(HTTP_X_ORG_KEY=payload["org_key"], HTTP_X_ORG_SECRET=payload["org_secret"])
    assert tooling.get(f"/api/v1/clusters/{cluster.pk}").status_code == 200
    assert tooling.get(f"/api/v1/clusters/{other.pk}").status_code == 404
    assert tooling.get("/api/v1/servers").status_code == 403
    attach = tooling.post(
        f"/api/v1/clusters/{cluster.pk}/bastion", {"server_id": str(node.pk)}, format="json"
    )
    assert attach.status_code == 403
    key = APIKey.objects.get(cluster_id=cluster.pk, purpose="cluster_bastion")
    assert key.allowed_cluster_ids == [str(cluster.pk)]


def test_no_secret_the_run_holds_reaches_its_log(org, api, hosts, settings, tmp_path):
    bastion_sshd, node_sshd = hosts
    cluster, action, node = cluster_ready_for_actions(
        org, bastion_sshd=bastion_sshd, node_sshd=node_sshd
    )
    # A tooling image that prints everything it was given.
    leaky = tmp_path / "leaky-docker"
    leaky.write_text('#!/bin/sh\ncat payload.json; cat "$HOME"/.ssh/autoglue/keys/*.pem\n')
    leaky.chmod(0o755)
    settings.CLUSTER_ACTION_DOCKER = str(leaky)
    run = _start_run(api, cluster, action)

    run_queued()

    text = _transcript(run["id"])
    assert "[REDACTED]" in text
    payload = json.loads(
        (bastion_sshd.home / f"autoglue/clusters/{cluster.pk}/payload.json").read_text()
    )
    for secret in (payload["org_secret"], payload["random_token"], payload["certificate_key"]):
        assert secret not in text
    assert "CANARY-KUBECONFIG" not in text
    for line in node.ssh_key.private_key.splitlines():
        if len(line) >= 12:
            assert line not in text


def test_a_cluster_without_a_ready_bastion_fails_the_run_with_a_readable_error(org, api, hosts):
    bastion_sshd, node_sshd = hosts
    cluster, action, _ = cluster_ready_for_actions(
        org, bastion_sshd=bastion_sshd, node_sshd=node_sshd
    )
    Cluster.objects.filter(pk=cluster.pk).update(captain_domain=None)
    cluster.bastion_server.__class__.objects.filter(pk=cluster.bastion_server_id).update(
        status="provisioning"
    )
    run = _start_run(api, cluster, action)

    assert run_queued() == [JobRun.Status.FAILED]

    body = api.get(f"/api/v1/clusters/{cluster.pk}/runs/{run['id']}").json()
    assert body["status"] == "failed"
    assert "not ready" in body["error"] and "no captain domain" in body["error"]
    cluster.refresh_from_db()
    assert cluster.status == Cluster.Status.FAILED and "no captain domain" in cluster.last_error


def test_a_failing_make_target_fails_run_and_cluster(org, api, hosts, settings, tmp_path):
    bastion_sshd, node_sshd = hosts
    cluster, action, _ = cluster_ready_for_actions(
        org, bastion_sshd=bastion_sshd, node_sshd=node_sshd
    )
    broken = tmp_path / "broken-docker"
    broken.write_text("#!/bin/sh\necho 'no such target' >&2\nexit 2\n")
    broken.chmod(0o755)
    settings.CLUSTER_ACTION_DOCKER = str(broken)
    run = _start_run(api, cluster, action)

    run_queued()

    run_row = ClusterRun.objects.get(pk=run["id"])
    assert (run_row.status, run_row.error) == ("failed", "make ping-servers exited with status 2")
    assert "no such target" in _transcript(run["id"])


def test_canceling_a_queued_run_cancels_it_without_touching_the_cluster(org, api, hosts):
    bastion_sshd, node_sshd = hosts
    cluster, action, _ = cluster_ready_for_actions(
        org, bastion_sshd=bastion_sshd, node_sshd=node_sshd
    )
    run = _start_run(api, cluster, action)

    response = api.post(f"/api/v1/clusters/{cluster.pk}/runs/{run['id']}/cancel")

    assert response.status_code == 200 and response.json()["status"] == "canceled"
    assert run_queued() == []
    cluster.refresh_from_db()
    assert cluster.status == Cluster.Status.PRE_PENDING
    again = api.post(f"/api/v1/clusters/{cluster.pk}/runs/{run['id']}/cancel")
    assert again.status_code == 409


def test_canceling_a_running_run_stops_the_remote_process(org, api, hosts, settings, tmp_path):
    bastion_sshd, node_sshd = hosts
    cluster, action, _ = cluster_ready_for_actions(
        org, bastion_sshd=bastion_sshd, node_sshd=node_sshd
    )
    settings.CLUSTER_ACTION_DOCKER = str(fake_docker(tmp_path, sleep="30"))
    run = _start_run(api, cluster, action)
    job = JobRun.objects.get(subject_id=run["id"])
    outcome: list[str] = []
    worker = threading.Thread(target=lambda: outcome.append(runner.job_execute(job_id=str(job.pk))))
    started = time.monotonic()
    worker.start()
    deadline = time.monotonic() + 20
    while "running make deploy" not in _transcript(run["id"]) and time.monotonic() < deadline:
        time.sleep(0.1)

    response = api.post(f"/api/v1/clusters/{cluster.pk}/runs/{run['id']}/cancel")
    worker.join(timeout=20)

    assert response.status_code == 200
    assert outcome == [JobRun.Status.CANCELED]
    assert time.monotonic() - started < 20  # not the 30 s the target would have taken
    assert ClusterRun.objects.get(pk=run["id"]).status == "canceled"
    assert not (node_sshd.home / "marker").exists()


def test_run_logs_of_another_organization_are_not_found(org, other_org, api, hosts):
    bastion_sshd, node_sshd = hosts
    cluster, action, _ = cluster_ready_for_actions(
        other_org, bastion_sshd=bastion_sshd, node_sshd=node_sshd
    )
    run = ClusterRun.objects.create(
        organization=other_org, cluster=cluster, action_ref=action, action=action.make_target
    )

    for suffix in ("logs", "logs/stream", "cancel"):
        method = api.post if suffix == "cancel" else api.get
        assert method(f"/api/v1/clusters/{cluster.pk}/runs/{run.pk}/{suffix}").status_code == 404


def test_a_stored_action_with_a_hostile_make_target_fails_the_run_before_the_bastion(
    org, api, hosts, settings, tmp_path
):
    # Saved around the API (an old row, or a write path that skipped the validator).
    bastion_sshd, node_sshd = hosts
    cluster, action, _ = cluster_ready_for_actions(
        org, bastion_sshd=bastion_sshd, node_sshd=node_sshd, make_target="--eval=$(shell id)"
    )
    ran = tmp_path / "docker-ran"
    recording = tmp_path / "recording-docker"
    recording.write_text(f"#!/bin/sh\ntouch {ran}\n")
    recording.chmod(0o755)
    settings.CLUSTER_ACTION_DOCKER = str(recording)
    run = _start_run(api, cluster, action)

    assert run_queued() == [JobRun.Status.FAILED]

    run_row = ClusterRun.objects.get(pk=run["id"])
    assert run_row.status == "failed"
    assert "make_target" in run_row.error and "must be a make target name" in run_row.error
    assert not ran.exists()

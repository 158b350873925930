"""Jobs with every real part: the web role as deployed (gunicorn + uvicorn workers, two
processes), Celery workers as separate processes on the real Redis, loopback sshds for the
bastion and the node, and the live log stream read over HTTP."""

from __future__ import annotations

import json
import re
import time
import uuid

import pytest
import requests

from apps.accounts.services import api_key_create_for_user
from apps.clusters.models import ClusterRun
from apps.jobs import services as jobs
from apps.jobs.models import JobLog, JobRun
from apps.jobs.tests.support import FAKE_DOCKER_ARGS, cluster_ready_for_actions
from tests import live

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# A tooling image that talks for a while (one line every 50 ms), then touches the node.
CHATTY_DOCKER = (
    FAKE_DOCKER_ARGS
    + r"""[ "$target" = ping-servers ] && { echo pong; exit 0; }
for i in $(seq 1 LINES); do echo "line $i of $target"; sleep SLEEP; done
cfg="$(mktemp)"
sed "s#~/#$HOME/#g" "$HOME/.ssh/autoglue/cluster-$cluster.config" > "$cfg"
for host in $(awk '/^Host /{print $2}' "$cfg"); do
  ssh -F "$cfg" -o BatchMode=yes "$host" "echo $cluster >> \"\$HOME/marker\""
done
"""
)


def _docker(tmp_path, lines: int, sleep: str):
    path = tmp_path / "chatty-docker"
    path.write_text(CHATTY_DOCKER.replace("LINES", str(lines)).replace("SLEEP", sleep))
    path.chmod(0o755)
    return path


def _events(response, limit: int | None = None) -> list[dict]:
    """Parse SSE events from a streaming response until `end` (or `limit` log events)."""
    events, current = [], {}
    for line in response.iter_lines(chunk_size=1, decode_unicode=True):
        if line == "":
            if current:
                events.append(current)
                if current.get("event") == "end":
                    return events
                if limit and sum(e.get("event") == "log" for e in events) >= limit:
                    return events
            current = {}
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(": ")
        current[field] = value
    return events


@pytest.fixture
def member_key(member):
    return api_key_create_for_user(user=member).plain


def test_a_run_streams_live_over_sse_and_a_resumed_stream_misses_and_repeats_nothing(
    org, member, member_key, sshd_factory, tmp_path, settings
):
    settings.JOBS_PUBLISH = True
    bastion_sshd, node_sshd = sshd_factory(home=True), sshd_factory(home=True)
    cluster, action, _ = cluster_ready_for_actions(
        org, bastion_sshd=bastion_sshd, node_sshd=node_sshd
    )
    env = live.process_env(CLUSTER_ACTION_DOCKER=str(_docker(tmp_path, 60, "0.05")))
    web, url = live.start_web(tmp_path, env)
    worker = live.start_worker(tmp_path, env, name="ssh")
    headers = {"X-API-KEY": member_key, "X-Org-ID": str(org.pk)}
    try:
        created = requests.post(
            f"{url}/api/v1/clusters/{cluster.pk}/actions/{action.pk}/runs",
            headers=headers,
            timeout=10,
        )
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        stream_url = f"{url}/api/v1/clusters/{cluster.pk}/runs/{run_id}/logs/stream"

        with requests.get(stream_url, headers=headers, stream=True, timeout=60) as first:
            assert first.status_code == 200
            assert first.headers["Content-Type"].startswith("text/event-stream")
            seen = _events(first, limit=5)
        # Disconnected mid-run; an EventSource reconnects with the last id it saw.
        last_id = [e for e in seen if e.get("event") == "log"][-1]["id"]
        assert ClusterRun.objects.get(pk=run_id).status in ("queued", "running")
        with requests.get(
            stream_url, headers={**headers, "Last-Event-ID": last_id}, stream=True, timeout=60
        ) as second:
            rest = _events(second)

        assert rest[-1]["event"] == "end"
        received = [e for e in seen + rest if e.get("event") == "log"]
        ids = [int(e["id"]) for e in received]
        stored = list(
            JobLog.objects.filter(subject_type="cluster_run", subject_id=run_id)
            .order_by("id")
            .values_list("id", "chunk")
        )
        assert ids == [row[0] for row in stored]  # nothing missed, nothing repeated
        text = "".join(json.loads(e["data"])["chunk"] for e in received)
        assert all(f"line {i} of deploy\n" in text for i in range(1, 61))
        assert ClusterRun.objects.get(pk=run_id).status == "succeeded"
        assert (node_sshd.home / "marker").read_text() == f"{cluster.pk}\n"
    finally:
        worker.stop()
        web.stop()


def test_a_worker_killed_mid_run_leaves_every_job_final_and_no_side_effect_twice(
    org, sshd_factory, tmp_path, settings
):
    settings.JOBS_PUBLISH = True
    settings.JOB_HEARTBEAT_SECONDS = 0.5  # as the workers' (live.process_env)
    settings.JOB_HEARTBEAT_STALE_SECONDS = 3
    settings.JOB_RESEND_AFTER_SECONDS = 3
    bastion_sshd, node_sshd = sshd_factory(home=True), sshd_factory(home=True)
    clusters = []
    for _ in range(6):
        cluster, action, _node = cluster_ready_for_actions(
            org,
            bastion_sshd=bastion_sshd,
            node_sshd=node_sshd,
            make_target=f"deploy-{uuid.uuid4().hex[:6]}",
        )
        clusters.append((cluster, action))
    env = live.process_env(CLUSTER_ACTION_DOCKER=str(_docker(tmp_path, 20, "0.1")))
    first = live.start_worker(tmp_path, env, name="first", concurrency=3)
    second = None
    try:
        from apps.clusters.services import cluster_run_create

        runs = [cluster_run_create(cluster=c, action=a) for c, a in clusters]
        live.wait_until(
            lambda: JobRun.objects.filter(status="running").count() >= 2, 60, "running jobs"
        )
        time.sleep(0.5)
        first.kill()  # kill -9 the whole worker: main process and pool
        second = live.start_worker(tmp_path, env, name="second", concurrency=3)

        def all_final() -> bool:
            jobs.job_reap()
            return not JobRun.objects.filter(status__in=JobRun.ACTIVE_STATUSES).exists()

        live.wait_until(all_final, 120, "every job to end", interval=1)
    finally:
        first.stop()
        if second is not None:
            second.stop()

    marker = (node_sshd.home / "marker").read_text() if (node_sshd.home / "marker").exists() else ""
    lines = marker.split()
    for run in runs:
        run.refresh_from_db()
        assert run.status in ("succeeded", "failed"), run.status
        count = lines.count(str(run.cluster_id))
        assert count <= 1  # no side effect ran twice
        if run.status == "succeeded":
            assert count == 1
        else:
            assert re.search(r"worker lost", run.error)
    assert ClusterRun.objects.filter(status__in=ClusterRun.ACTIVE_STATUSES).count() == 0
    assert any(run.status == "failed" for run in runs)  # the kill did hit a running job

"""Jobs through broker and worker faults, with every part real: a redis-server of the test's own
(killed and restarted empty, as a broker without a volume comes back), Celery workers and beat as
separate processes, loopback sshds for the bastion and the node.

The figures these tests assert are the recovery goals in docs/jobs.md ("Recovery")."""

from __future__ import annotations

import importlib
import time
import uuid

import pytest
from django.apps import apps as django_apps
from django.conf import settings as django_settings
from django_celery_beat.models import PeriodicTask

from apps.clusters.models import ClusterRun
from apps.clusters.services import cluster_run_create
from apps.infrastructure.bootstrap import bastion_bootstrap_start
from apps.infrastructure.models import Server
from apps.jobs.models import JobLog, JobRun
from apps.jobs.tests.support import FAKE_DOCKER_ARGS, bastion_on, cluster_ready_for_actions
from tests import live

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# A tooling image that prints LINES lines (one every SLEEP s), waits HOLD s, then leaves one
# line per run on the node: the marker counts side effects.
TALKING_DOCKER = (
    FAKE_DOCKER_ARGS
    + r"""[ "$target" = ping-servers ] && { echo pong; exit 0; }
for i in $(seq 1 LINES); do echo "line $i of $target"; sleep SLEEP; done
sleep HOLD
cfg="$(mktemp)"
sed "s#~/#$HOME/#g" "$HOME/.ssh/autoglue/cluster-$cluster.config" > "$cfg"
for host in $(awk '/^Host /{print $2}' "$cfg"); do
  ssh -F "$cfg" -o BatchMode=yes "$host" "echo $cluster >> \"\$HOME/marker\""
done
"""
)


def _docker(tmp_path, *, lines: int, sleep: str, hold: str):
    path = tmp_path / "talking-docker"
    text = TALKING_DOCKER.replace("LINES", str(lines)).replace("SLEEP", sleep)
    path.write_text(text.replace("HOLD", hold))
    path.chmod(0o755)
    return path


def _only_the_reaper_scheduled() -> None:
    """The schedules as migrations create them (at the default intervals), only the reaper
    enabled: beat sends it every JOB_REAP_INTERVAL_SECONDS to the maintenance queue."""
    schedules = importlib.import_module("apps.maintenance.migrations.0002_schedules")
    schedules.create_schedules(django_apps, None)
    PeriodicTask.objects.exclude(name="jobs-reap").update(enabled=False)


@pytest.fixture
def housekeeping(tmp_path):
    """Beat and the default/maintenance worker as deployed; started with `housekeeping(env)`."""
    started: list[live.Process] = []

    def start(env: dict[str, str]) -> None:
        _only_the_reaper_scheduled()
        started.append(live.start_compose_worker(tmp_path, env, service="worker", concurrency=1))
        started.append(live.start_beat(tmp_path, env))

    yield start
    for process in started:
        process.stop()


def _clusters(org, sshd_factory, count: int):
    bastion_sshd, node_sshd = sshd_factory(home=True), sshd_factory(home=True)
    clusters = [
        cluster_ready_for_actions(
            org,
            bastion_sshd=bastion_sshd,
            node_sshd=node_sshd,
            make_target=f"deploy-{uuid.uuid4().hex[:6]}",
        )[:2]
        for _ in range(count)
    ]
    return clusters, node_sshd


def _marker_lines(node_sshd) -> list[str]:
    marker = node_sshd.home / "marker"
    return marker.read_text().split() if marker.exists() else []


def _talking() -> int:
    return (
        JobLog.objects.filter(job__status="running", chunk__contains="line 1 of")
        .values("job")
        .distinct()
        .count()
    )


def test_a_redis_restart_under_running_ssh_jobs_leaves_the_threads_worker_alive_and_every_job_run_once(  # noqa: E501
    org, sshd_factory, tmp_path, settings, redis_server, housekeeping
):
    settings.JOBS_PUBLISH = True
    clusters, node_sshd = _clusters(org, sshd_factory, 6)
    env = live.process_env(
        REDIS_URL=redis_server.url,
        CLUSTER_ACTION_DOCKER=str(_docker(tmp_path, lines=5, sleep="0.1", hold="10")),
    )
    worker = live.start_compose_worker(tmp_path, env, service="ssh-worker")
    housekeeping(env)
    try:
        with live.publishing_to(redis_server.url):
            runs = [cluster_run_create(cluster=c, action=a) for c, a in clusters]
        # Four runs are past their setup and talking to the node, two wait in the broker.
        live.wait_until(lambda: _talking() >= 4, 60, "four runs talking to the node")
        # The gossip step, which failed to restart after reconnects, is not run: it would have
        # bound a queue to the events exchange (checked directly: a given restart trips over it
        # or not depending on timing).
        assert not redis_server.client().smembers("_kombu.binding.celeryev")
        # Redis dies and comes back empty, three times (whether the worker is caught holding
        # unacknowledged jobs while it waits for more depends on timing): the waiting runs'
        # messages and the running ones' unacknowledged copies are gone.
        for _ in range(3):
            redis_server.kill()
            time.sleep(1)
            redis_server.start()
            time.sleep(1.5)
        restarted = time.monotonic()

        # The two waiting runs' messages were lost: the reaper notices the empty broker and
        # sends them again; the worker takes them once its four threads are free.
        live.wait_until(
            lambda: not JobRun.objects.filter(status="queued").exists(),
            60,
            "the lost runs to be claimed",
            interval=0.2,
        )
        claimed_after = time.monotonic() - restarted
        live.wait_until(
            lambda: not JobRun.objects.filter(status__in=JobRun.ACTIVE_STATUSES).exists(),
            60,
            "every job to end",
            interval=0.5,
        )
        assert worker.proc.poll() is None, worker.output()
        log = worker.log.read_text(errors="replace")
        # How the worker died, and a step that could not restart (docs/jobs.md "Recovery").
        assert "Unrecoverable error" not in log
        assert "Error on restarting" not in log
    finally:
        worker.stop()

    lines = _marker_lines(node_sshd)
    for run in runs:
        run.refresh_from_db()
        assert run.status == ClusterRun.Status.SUCCEEDED, (run.status, run.error)
        assert lines.count(str(run.cluster_id)) == 1  # each side effect exactly once
    # Resent within a reaper tick or two of Redis coming back, not JOB_RESEND_AFTER_SECONDS.
    print(f"lost runs claimed {claimed_after:.1f} s after Redis came back")  # noqa: T201
    assert claimed_after < 20, claimed_after


# A stand-in bootstrap script: three lines a moment apart (so they are buffered, not flushed
# with the first), then, on the first attempt only, a long wait to be killed in.
SLOW_BOOTSTRAP = """\
echo "step 1 of the first attempt"; sleep 0.2
echo "step 2 of the first attempt"; sleep 0.2
echo "step 3 of the first attempt"
if [ ! -e "$HOME/attempted" ]; then touch "$HOME/attempted"; sleep 120; fi
echo "bootstrap finished"
"""


def test_a_killed_workers_run_is_requeued_within_twenty_seconds_and_keeps_its_buffered_lines(
    org, sshd_factory, tmp_path, settings, redis_server, housekeeping
):
    settings.JOBS_PUBLISH = True
    sshd = sshd_factory(home=True)
    bastion = bastion_on(sshd, org)
    script = tmp_path / "slow-bootstrap.sh"
    script.write_text(SLOW_BOOTSTRAP)
    env = live.process_env(
        REDIS_URL=redis_server.url,
        BASTION_BOOTSTRAP_SCRIPT=str(script),
        # The defaults: a heartbeat every 5 s, lost after 15 s, the reaper every 5 s.
        JOB_HEARTBEAT_SECONDS=str(django_settings.JOB_HEARTBEAT_SECONDS),
        JOB_LOG_FLUSH_SECONDS="0.5",
    )
    first = live.start_compose_worker(tmp_path, env, service="ssh-worker")
    second = None
    housekeeping(env)
    try:
        with live.publishing_to(redis_server.url):
            job = bastion_bootstrap_start(server=bastion)
        assert job is not None
        live.wait_until((sshd.home / "attempted").exists, 60, "the first attempt to start")
        time.sleep(1.5)  # well within a heartbeat: only the flush tick can have stored them
        first.kill()  # SIGKILL, main process and pool
        killed = time.monotonic()
        second = live.start_compose_worker(tmp_path, env, service="ssh-worker")

        live.wait_until(
            lambda: JobRun.objects.get(pk=job.pk).status != "running" or _attempts(job) > 1,
            60,
            "the lost run to be requeued",
            interval=0.2,
        )
        requeued_after = time.monotonic() - killed
        live.wait_until(
            lambda: Server.objects.get(pk=bastion.pk).status == Server.Status.READY,
            60,
            "the second attempt to finish",
        )
    finally:
        first.stop()
        if second is not None:
            second.stop()

    job.refresh_from_db()
    assert (job.status, job.attempts) == ("succeeded", 2)
    transcript = "".join(JobLog.objects.filter(job=job).values_list("chunk", flat=True))
    # What the killed attempt printed before it died is kept, then the reaper's note, then the
    # second attempt.
    first_attempt = transcript.split("worker lost")[0]
    for step in (1, 2, 3):
        assert f"step {step} of the first attempt\n" in first_attempt
    assert "bootstrap finished" in transcript
    print(f"killed worker's run requeued after {requeued_after:.1f} s")  # noqa: T201
    assert requeued_after < 20, requeued_after


def _attempts(job: JobRun) -> int:
    return JobRun.objects.get(pk=job.pk).attempts

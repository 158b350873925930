"""Helpers for tests that run real jobs: execute queued runs in-process, build a bastion and a
cluster whose servers are real loopback sshd processes, and a stand-in `docker` for bastions.

The stand-in plays the part of the tooling image: it reads the ssh config Autoglue wrote on the
bastion and, through it, reaches each node over SSH (bastion sshd -> node sshd): `make
ping-servers` runs `true` on every node, any other target appends its name to `~/marker` on
every node. Paths under `~` are rewritten to the session's `$HOME`, as the real container's
mount of `$HOME/.ssh` at `/root/.ssh` does.
"""

from __future__ import annotations

import getpass
from pathlib import Path

from apps.clusters.models import ClusterNodePool, NodePoolServer
from apps.clusters.tests.factories import ActionFactory, ClusterFactory, NodePoolFactory
from apps.dns.tests.factories import DomainFactory, RecordSetFactory
from apps.infrastructure.models import Server
from apps.infrastructure.tests.factories import ServerFactory, SSHKeyFactory
from apps.jobs import runner
from apps.jobs.models import JobRun

# What every stand-in shares: `ps`/`rm` (cancel's clean-up) do nothing; `run` yields the
# cluster id (from its label) and the make target.
FAKE_DOCKER_ARGS = r"""#!/usr/bin/env bash
set -euo pipefail
case "${1:-}" in ps|rm) exit 0 ;; esac
cluster="" target=""
while [ $# -gt 0 ]; do
  case "$1" in
    --label) case "$2" in autoglue.cluster=*) cluster="${2#autoglue.cluster=}" ;; esac; shift 2 ;;
    make) target="$2"; shift 2 ;;
    *) shift ;;
  esac
done
"""

FAKE_DOCKER = (
    FAKE_DOCKER_ARGS
    + r"""test -s payload.json
cfg="$HOME/.ssh/autoglue/cluster-$cluster.config"
local_cfg="$(mktemp)"
sed "s#~/#$HOME/#g" "$cfg" > "$local_cfg"
for host in $(awk '/^Host /{print $2}' "$local_cfg"); do
  if [ "$target" = ping-servers ]; then
    ssh -F "$local_cfg" -o BatchMode=yes "$host" true
    echo "ping $host ok"
  else
    if [ -n "${FAKE_DOCKER_SLEEP:-}" ]; then sleep "$FAKE_DOCKER_SLEEP"; fi
    ssh -F "$local_cfg" -o BatchMode=yes "$host" "echo $target >> \"\$HOME/marker\""
    echo "ran $target on $host"
  fi
done
rm -f "$local_cfg"
"""
)


def bootstrap_job(organization, **fields) -> JobRun:
    """A `bootstrap_bastion` run (not started) of a new bastion, for tests of its log."""
    server = ServerFactory(
        organization=organization, role=Server.Role.BASTION, public_ip_address="203.0.113.9"
    )
    return JobRun.objects.create(
        kind="bootstrap_bastion",
        queue="ssh",
        organization=organization,
        subject_type=JobRun.SubjectType.SERVER,
        subject_id=server.pk,
        **fields,
    )


def run_queued(kind: str | None = None) -> list[str]:
    """Run every queued job (of `kind`) in this process, as a worker would; their statuses."""
    jobs = JobRun.objects.filter(status=JobRun.Status.QUEUED).order_by("queued_at")
    if kind:
        jobs = jobs.filter(kind=kind)
    return [runner.job_execute(job_id=str(job.pk)) for job in list(jobs)]


def fake_docker(folder: Path, sleep: str = "") -> Path:
    path = folder / "fake-docker"
    text = FAKE_DOCKER
    if sleep:
        text = text.replace(
            "set -euo pipefail\n", f"set -euo pipefail\nFAKE_DOCKER_SLEEP={sleep}\n", 1
        )
    path.write_text(text)
    path.chmod(0o755)
    return path


def bastion_on(sshd, organization, **fields) -> Server:
    """A bastion server reached at the sshd, with the org's key authorized there."""
    key = SSHKeyFactory(organization=organization)
    sshd.authorize(getpass.getuser(), key.public_key)
    defaults = {
        "hostname": "bastion-1",
        "public_ip_address": "127.0.0.1",
        "private_ip_address": "127.0.0.1",
        "ssh_user": getpass.getuser(),
        "ssh_port": sshd.port,
        "role": Server.Role.BASTION,
        "status": Server.Status.PENDING,
    }
    defaults.update(fields)
    return ServerFactory(organization=organization, ssh_key=key, **defaults)


def pin_host_key(server: Server, sshd) -> None:
    algo, blob = sshd.host_public_key.split()[:2]
    Server.objects.filter(pk=server.pk).update(ssh_host_key_algo=algo, ssh_host_key=blob)


def cluster_ready_for_actions(organization, *, bastion_sshd, node_sshd, make_target="deploy"):
    """A cluster whose bastion (ready, host key pinned) and single node are loopback sshds."""
    bastion = bastion_on(bastion_sshd, organization, status=Server.Status.READY)
    pin_host_key(bastion, bastion_sshd)
    node = bastion_on(
        node_sshd,
        organization,
        hostname="node-1",
        public_ip_address=None,
        role=Server.Role.MASTER,
        status=Server.Status.READY,
    )
    pin_host_key(node, node_sshd)
    pool = NodePoolFactory(organization=organization, role="master")
    NodePoolServer.objects.create(organization=organization, node_pool=pool, server=node)
    domain = DomainFactory(organization=organization)
    record_set = RecordSetFactory(domain=domain, organization=organization, name="api")
    cluster = ClusterFactory(
        organization=organization,
        bastion_server=bastion,
        captain_domain=domain,
        control_plane_record_set=record_set,
        kubeconfig="CANARY-KUBECONFIG-apiVersion: v1",
    )
    ClusterNodePool.objects.create(organization=organization, cluster=cluster, node_pool=pool)
    action = ActionFactory(make_target=make_target)
    return cluster, action, node


def server_being_bootstrapped(org) -> tuple[Server, JobRun]:  # type: ignore[no-untyped-def]
    """A server whose bootstrap is running, so a stream of its logs stays open until told
    otherwise."""
    server = ServerFactory(organization=org, status=Server.Status.PROVISIONING)
    job = JobRun.objects.create(
        kind="bootstrap_bastion",
        queue="ssh",
        organization=org,
        subject_type=JobRun.SubjectType.SERVER,
        subject_id=server.pk,
        status=JobRun.Status.RUNNING,
    )
    return server, job

"""The `cluster_action` job: run an action's make target against a cluster from its bastion.

Steps (the original's, with its later fixes): the run goes `running` and the cluster
`bootstrapping`; the cluster is validated (ready bastion, captain domain, control-plane record
set, at least one node pool with servers; every server and the image checked as safe to use);
the node SSH keys, an ssh config for the nodes, a known_hosts file of their pinned host keys and
the payload (the cluster as the API shows it, plus its secrets, `base_url`, `metadata` and a
freshly minted 24-hour org key for the tooling to call back) are written on the bastion with
mode 600 — over stdin, never in a command line; the cluster goes `pending`; `make ping-servers`
runs in the configured image, the cluster goes `provisioning`; `make <target>` runs; the cluster
ends `ready` and the run `succeeded`. Any failure leaves both `failed` with a readable error.
Output streams into the job log with every secret redacted.

Cancel closes the channel, kills the remote process group and removes the run's containers.
A run is never retried behind the operator's back: after a lost worker the reaper fails it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shlex
import uuid
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import APIKey
from apps.accounts.services import KeyScopeRequest, api_key_create_for_org
from apps.clusters.models import Cluster, ClusterRun
from apps.clusters.selectors import cluster_queryset, cluster_secrets
from apps.clusters.serializers import ClusterSerializer
from apps.core.api.serializers import prefetched
from apps.core.validators import check_cluster_for_run, check_server_for_ssh, validate_make_target
from apps.infrastructure import ssh_errors
from apps.infrastructure.clients import CommandStopped, ServerSSHClient
from apps.infrastructure.models import Server
from apps.jobs import services as jobs
from apps.jobs.logs import log_quote
from apps.jobs.models import JobRun
from apps.jobs.runner import JobCanceled, JobFailed

if TYPE_CHECKING:
    from apps.jobs.runner import JobContext

logger = logging.getLogger(__name__)

KIND = "cluster_action"
BASTION_KEY_PURPOSE = "cluster_bastion"


def cluster_run_enqueue(*, run: ClusterRun) -> JobRun:
    """Queue the job of a new run (in the caller's transaction; sent after commit)."""
    job = jobs.job_enqueue(
        kind=KIND,
        organization_id=run.organization_id,
        subject_type=JobRun.SubjectType.CLUSTER_RUN,
        subject_id=run.pk,
    )
    ClusterRun.objects.filter(pk=run.pk).update(job_id=str(job.pk))
    run.job_id = str(job.pk)
    return job


def _set_cluster(
    cluster_id: uuid.UUID, status: str, last_error: str = "", *, run_id: uuid.UUID | None = None
) -> None:
    """Move the cluster, but only while `run_id` (when given) is still running: a run the reaper
    already ended must not overwrite the state it left."""
    if (
        run_id is not None
        and not ClusterRun.objects.filter(pk=run_id, status=ClusterRun.Status.RUNNING).exists()
    ):
        return
    Cluster.objects.filter(pk=cluster_id).update(
        status=status, last_error=last_error[:4000], updated_at=timezone.now()
    )


def _node_servers(cluster: Cluster) -> tuple[int, list[Server]]:
    # The selector loaded pools and their servers as plain lists; read those, not the managers.
    pools = list(prefetched(cluster, "node_pools"))
    servers: dict[uuid.UUID, Server] = {}
    for pool in pools:
        for server in prefetched(pool, "servers"):
            servers[server.pk] = server
    return len(pools), list(servers.values())


def _attachment_problems(cluster: Cluster, pool_count: int, servers: list[Server]) -> list[str]:
    problems = []
    bastion = cluster.bastion_server
    if bastion is None:
        problems.append("no bastion server attached")
    elif bastion.status != Server.Status.READY:
        problems.append(f"bastion {bastion.hostname or bastion.pk} is {bastion.status}, not ready")
    if cluster.captain_domain_id is None:
        problems.append("no captain domain attached")
    if cluster.control_plane_record_set_id is None:
        problems.append("no control-plane record set attached")
    if not pool_count:
        problems.append("no node pool attached")
    elif not servers:
        problems.append("its node pools have no servers")
    if not cluster.docker_image or not cluster.docker_tag:
        problems.append("docker_image and docker_tag must be set")
    return problems


def _make_target_problems(run: ClusterRun) -> list[str]:
    """The run's make target goes on the bastion's command line: re-checked here as the image
    and servers are, since a stored action may predate the rule or have been written around the
    API. The message never repeats the value."""
    try:
        validate_make_target(run.action)
    except ValidationError as exc:
        return [f"action {run.action_ref_id or ''}: make_target: {m}" for m in exc.messages]
    return []


def _validate(cluster: Cluster, run: ClusterRun) -> tuple[Server, list[Server]]:
    """The cluster can run the action: every problem named, in one message. Returns the bastion
    and the node servers."""
    pool_count, servers = _node_servers(cluster)
    problems = _make_target_problems(run) + _attachment_problems(cluster, pool_count, servers)
    try:
        check_cluster_for_run(cluster)
        for server in [cluster.bastion_server, *servers]:
            if server is not None:
                check_server_for_ssh(server)
    except ValidationError as exc:
        problems.extend(exc.messages)
    if problems or cluster.bastion_server is None:
        raise JobFailed("cluster is not ready for actions: " + "; ".join(problems))
    return cluster.bastion_server, servers


def ssh_config(*, cluster: Cluster, servers: list[Server]) -> str:
    """One `Host` entry per node (validated names, users, addresses and ports only)."""
    lines = []
    for server in sorted(servers, key=lambda s: (s.hostname or "", str(s.pk))):
        lines += [
            f"Host {server.hostname or server.pk}",
            f"  HostName {server.private_ip_address}",
            f"  Port {server.ssh_port}",
            f"  User {server.ssh_user}",
            f"  IdentityFile ~/.ssh/autoglue/keys/{server.ssh_key_id}.pem",
            "  IdentitiesOnly yes",
            f"  UserKnownHostsFile ~/.ssh/autoglue/known_hosts-{cluster.pk}",
            # Pinned keys are in the file; a node never contacted yet is learned once.
            "  StrictHostKeyChecking " + ("yes" if server.ssh_host_key else "accept-new"),
            "",
        ]
    return "\n".join(lines)


def known_hosts(servers: list[Server]) -> str:
    lines = []
    for server in servers:
        if server.ssh_host_key and server.ssh_host_key_algo:
            host = str(server.private_ip_address)
            name = host if server.ssh_port == 22 else f"[{host}]:{server.ssh_port}"
            lines.append(f"{name} {server.ssh_host_key_algo} {server.ssh_host_key}")
    return "\n".join(lines) + ("\n" if lines else "")


def _mint_bastion_key(cluster: Cluster) -> tuple[str, str]:
    """A new 24-hour org key for the tooling on the bastion; earlier ones of this cluster go.
    It is limited to this cluster (a scoped key: docs/identity.md), whoever started the run:
    the bastion holds it for a day and the tooling has no business with any other cluster.
    Read-only keys cannot start runs; a starting key's client networks describe its caller,
    not the bastion, so they are not carried over."""
    with transaction.atomic():
        APIKey.objects.filter(
            organization_id=cluster.organization_id,
            purpose=BASTION_KEY_PURPOSE,
            cluster_id=cluster.pk,
        ).delete()
        created = api_key_create_for_org(
            organization=cluster.organization,
            name=f"cluster-{cluster.pk}-bastion",
            expires_in_hours=int(settings.CLUSTER_BASTION_KEY_HOURS),
            purpose=BASTION_KEY_PURPOSE,
            cluster_id=cluster.pk,
            is_ephemeral=True,
            scope=KeyScopeRequest(cluster_ids=(cluster.pk,)),
        )
    return created.plain, created.secret or ""


def build_payload(*, cluster: Cluster, org_key: str, org_secret: str) -> dict[str, Any]:
    data = dict(ClusterSerializer(cluster).data)
    data.update(cluster_secrets(cluster=cluster))
    data["org_key"], data["org_secret"] = org_key, org_secret
    data["base_url"] = settings.BASE_URL
    data["metadata"] = {item.key: item.value for item in cluster.metadata.all()}
    return data


def _remote_paths(cluster_id: uuid.UUID) -> dict[str, str]:
    cid = str(cluster_id)
    return {
        "keys": ".ssh/autoglue/keys",
        "config": f".ssh/autoglue/cluster-{cid}.config",
        "known_hosts": f".ssh/autoglue/known_hosts-{cid}",
        "workdir": f"autoglue/clusters/{cid}",
        "payload": f"autoglue/clusters/{cid}/payload.json",
    }


def write_file_command(relative_path: str) -> str:
    """Write stdin to `$HOME/<path>` atomically with mode 600 (paths are ours: uuids)."""
    target = '"$HOME"/' + shlex.quote(relative_path)
    folder = '"$HOME"/' + shlex.quote(relative_path.rsplit("/", 1)[0])
    return (
        f"umask 077 && mkdir -p {folder} && cat > {target}.tmp && "
        f"chmod 600 {target}.tmp && mv -f {target}.tmp {target}"
    )


def make_command(*, cluster: Cluster, run: ClusterRun, target: str) -> str:
    paths = _remote_paths(cluster.pk)
    docker = shlex.quote(settings.CLUSTER_ACTION_DOCKER)
    image = shlex.quote(f"{cluster.docker_image}:{cluster.docker_tag}")
    return " ".join(
        [
            f'cd "$HOME"/{shlex.quote(paths["workdir"])}',
            # The session's process group: what cancel stops.
            "&& echo $$ > .autoglue-run.pid",
            f"&& exec {docker} run --rm --sig-proxy=false",
            f"--label {shlex.quote(f'autoglue.cluster={cluster.pk}')}",
            f"--label {shlex.quote(f'autoglue.run={run.pk}')}",
            '-v "$HOME"/.ssh:/root/.ssh',
            '-v "$PWD"/payload.json:/opt/gluekube/platform.json',
            image,
            "make",
            shlex.quote(target),
        ]
    )


def stop_command(*, cluster: Cluster, run: ClusterRun) -> str:
    paths = _remote_paths(cluster.pk)
    docker = shlex.quote(settings.CLUSTER_ACTION_DOCKER)
    label = shlex.quote(f"label=autoglue.run={run.pk}")
    return (
        f'cd "$HOME"/{shlex.quote(paths["workdir"])} 2>/dev/null && '
        'if [ -f .autoglue-run.pid ]; then kill -TERM -- -"$(cat .autoglue-run.pid)" '
        "2>/dev/null; fi; "
        f"ids=$({docker} ps -q --filter {label} 2>/dev/null) || true; "
        f'if [ -n "$ids" ]; then {docker} rm -f $ids >/dev/null 2>&1; fi; true'
    )


def _bastion_files(
    ctx: JobContext, cluster: Cluster, bastion: Server, servers: list[Server]
) -> list[tuple[str, str]]:
    """Everything the tooling on the bastion needs, as (path under $HOME, content); every
    secret in it is registered for redaction first."""
    keys: dict[uuid.UUID, str] = {}
    for server in [*servers, bastion]:
        if server.ssh_key_id not in keys:
            try:
                keys[server.ssh_key_id] = server.ssh_key.private_key
            except Exception:  # noqa: BLE001
                raise JobFailed(f"SSH key {server.ssh_key_id} could not be decrypted") from None
            ctx.log.add_secret(keys[server.ssh_key_id])
    for value in cluster_secrets(cluster=cluster).values():
        ctx.log.add_secret(value)
    org_key, org_secret = _mint_bastion_key(cluster)
    ctx.log.add_secret(org_secret)
    payload = build_payload(cluster=cluster, org_key=org_key, org_secret=org_secret)
    paths = _remote_paths(cluster.pk)
    node_keys = sorted({str(s.ssh_key_id) for s in servers})
    files = [(f"{paths['keys']}/{key_id}.pem", keys[uuid.UUID(key_id)]) for key_id in node_keys]
    files += [
        (paths["config"], ssh_config(cluster=cluster, servers=servers)),
        (paths["known_hosts"], known_hosts(servers)),
        (paths["payload"], json.dumps(payload, indent=2)),
    ]
    return files


def _run_on_bastion(
    ctx: JobContext, client: ServerSSHClient, cluster: Cluster, run: ClusterRun, files: list
) -> None:
    log = ctx.log
    log.system(f"writing {len(files)} files to the bastion (mode 600)")
    for path, content in files:
        code = _stream(ctx, client, write_file_command(path), stdin=content.encode())
        if code != 0:
            raise JobFailed(f"writing ~/{path} on the bastion failed (status {code})")
    _set_cluster(cluster.pk, Cluster.Status.PENDING, run_id=run.pk)
    for target, status_after in (
        ("ping-servers", Cluster.Status.PROVISIONING),
        (run.action, Cluster.Status.READY),
    ):
        ctx.check()
        log.system(f"running make {target}")
        code = _stream(ctx, client, make_command(cluster=cluster, run=run, target=target))
        if code != 0:
            raise JobFailed(f"make {target} exited with status {code}")
        log.system(f"make {target} completed")
        _set_cluster(cluster.pk, status_after, run_id=run.pk)


def cluster_action(ctx: JobContext) -> dict[str, Any]:
    """The `cluster_action` job (see the module docstring)."""
    log = ctx.log
    # The job acts for the run's organization; rows are found by the ids it was given.
    subject_id = ctx.job.subject_id
    run = ClusterRun.objects.filter(pk=subject_id).first() if subject_id else None
    if run is None:
        raise JobFailed("the cluster run no longer exists")
    if not ClusterRun.objects.filter(pk=run.pk, status=ClusterRun.Status.QUEUED).update(
        status=ClusterRun.Status.RUNNING, updated_at=timezone.now()
    ):
        raise JobFailed(f"the run is {run.status}, not queued")
    run.status = ClusterRun.Status.RUNNING
    cluster = cluster_queryset().filter(pk=run.cluster_id).select_related("organization").first()
    if cluster is None:
        raise JobFailed("the cluster no longer exists")
    _set_cluster(cluster.pk, Cluster.Status.BOOTSTRAPPING, run_id=run.pk)
    bastion, servers = _validate(cluster, run)
    log.system(
        f"run {run.pk}: make {log_quote(run.action)} on cluster {log_quote(cluster.name)} "
        f"({cluster.pk})"
    )
    ctx.check()
    files = _bastion_files(ctx, cluster, bastion, servers)
    host, port, user = str(bastion.public_ip_address), bastion.ssh_port, bastion.ssh_user
    log.system(f"connecting to bastion {host}:{port} as {user}")
    client = ServerSSHClient(
        server=bastion, host=host, timeout=float(settings.SSH_CONNECT_TIMEOUT_SECONDS)
    )
    try:
        client.connect()
    except Exception as exc:  # noqa: BLE001
        raise JobFailed(ssh_errors.describe(exc, host=host, port=port, user=user)) from None

    def stop_remote() -> None:
        try:
            client.run(stop_command(cluster=cluster, run=run), timeout=15)
        finally:
            client.close()

    unregister = ctx.on_cancel(stop_remote)
    finished = False
    try:
        _run_on_bastion(ctx, client, cluster, run, files)
        finished = True
    finally:
        unregister()
        if not finished:
            # Out of time, canceled or broken: the container survives a closed session
            # (--sig-proxy=false), so stop it here rather than leave it running.
            with contextlib.suppress(Exception):
                client.run(stop_command(cluster=cluster, run=run), timeout=15)
        client.close()
    ClusterRun.objects.filter(pk=run.pk, status=ClusterRun.Status.RUNNING).update(
        status=ClusterRun.Status.SUCCEEDED,
        error="",
        finished_at=timezone.now(),
        updated_at=timezone.now(),
    )
    return {"cluster_id": str(cluster.pk), "run_id": str(run.pk), "action": run.action}


def _stream(
    ctx: JobContext, client: ServerSSHClient, command: str, stdin: bytes | None = None
) -> int:
    try:
        return client.stream(
            command,
            on_output=ctx.log.write,
            stdin=stdin,
            stop=ctx.cancel_event,
            deadline=ctx.deadline,
        )
    except CommandStopped:
        raise JobCanceled(ctx.cancel_reason) from None
    except Exception as exc:  # noqa: BLE001
        if ctx.canceled:
            raise JobCanceled(ctx.cancel_reason) from None
        raise JobFailed(f"SSH to the bastion failed: {type(exc).__name__}") from None


def cluster_action_failed(job: JobRun, status: str, error: str) -> None:
    """The run ends `failed` or `canceled` with the reason; the cluster `failed` with it (a
    canceled run leaves the cluster failed too: its state after a half-run action is unknown)."""
    now = timezone.now()
    run_status = (
        ClusterRun.Status.CANCELED if status == JobRun.Status.CANCELED else ClusterRun.Status.FAILED
    )
    run = ClusterRun.objects.filter(pk=job.subject_id).first() if job.subject_id else None
    if run is None:
        return
    started = run.status == ClusterRun.Status.RUNNING
    changed = ClusterRun.objects.filter(pk=run.pk, status__in=ClusterRun.ACTIVE_STATUSES).update(
        status=run_status, error=error[:4000], finished_at=now, updated_at=now
    )
    # A run canceled before it started leaves the cluster as it was.
    if changed and started:
        prefix = "canceled" if run_status == ClusterRun.Status.CANCELED else "failed"
        # A refused make target is not repeated (it may hold anything).
        what = run.action if not _make_target_problems(run) else "the action"
        _set_cluster(run.cluster_id, Cluster.Status.FAILED, f"{what} {prefix}: {error}")

"""Bastion bootstrap: the sweep that claims pending bastions, and the job that prepares one.

The sweep (beat, every BASTION_SWEEP_INTERVAL_SECONDS) locks pending bastions with
`FOR UPDATE SKIP LOCKED`, moves them to `provisioning` and queues one `bootstrap_bastion` job
each, in the same transaction; the job kind is unique per server while active, so two sweeps
(a doubled tick, two beats) never bootstrap one server twice.

The job connects with the organization's key (decrypted in memory only), pins the host key on
first contact and refuses a changed one, pipes `scripts/bastion-bootstrap.sh` to `bash -s` with
the block toggles from BASTION_BOOTSTRAP_ENV, streams its output into the job log, and leaves
the server `ready`, or `failed` with `last_error`.
"""

from __future__ import annotations

import logging
import shlex
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from apps.audit.signals import audit_row_updated
from apps.core.validators import check_server_for_ssh, unmapped_ip
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

KIND = "bootstrap_bastion"
SCRIPT = Path(__file__).resolve().parent / "scripts" / "bastion-bootstrap.sh"
TOGGLES = (
    "WAIT_CLOUD_INIT",
    "BASELINE_PKGS",
    "INSTALL_DOCKER",
    "SSH_HARDEN",
    "FIREWALL",
    "AUTO_UPDATES",
    "TIME_SYNC",
    "FAIL2BAN",
    "BANNER",
    "APT_LOCK_WAIT_SECS",
)


# The blocks that change the machine the script reaches (waiting for cloud-init changes nothing).
MACHINE_BLOCKS = (
    "BASELINE_PKGS",
    "INSTALL_DOCKER",
    "SSH_HARDEN",
    "FIREWALL",
    "AUTO_UPDATES",
    "TIME_SYNC",
    "FAIL2BAN",
    "BANNER",
)


def bootstrap_toggles(server: Server) -> tuple[dict[str, Any], bool]:
    """(the script's toggles for this server, whether the machine blocks were switched off).

    A loopback bastion (allowed only with AUTOGLUE_ALLOW_LOOPBACK_TARGETS, for tests and demos)
    is the machine Autoglue itself runs on: hardening it would install Docker, rewrite sshd's
    settings and turn on a firewall on an operator's own laptop. There every machine block
    defaults to off; BASTION_BOOTSTRAP_ENV may still switch one on, deliberately."""
    toggles = dict(settings.BASTION_BOOTSTRAP_ENV)
    try:
        loopback = unmapped_ip(str(server.public_ip_address)).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        return toggles, False
    for name in MACHINE_BLOCKS:
        toggles.setdefault(name, "0")
    return toggles, True


def _update_audited(rows: QuerySet[Server], **values: Any) -> None:
    """A conditional update of one server's status, with the audit entry a save would write
    (status and error before and after), so its history shows what bootstraps did to it."""
    before = rows.first()
    if before is None:
        return
    if rows.update(**values, updated_at=timezone.now()):
        audit_row_updated(before, Server.objects.get(pk=before.pk))


def bastion_bootstrap_start(*, server: Server) -> JobRun | None:
    """Move a bastion to `provisioning` and queue its bootstrap (in the caller's transaction).
    None when a bootstrap of it is already active."""
    try:
        with transaction.atomic():
            job = jobs.job_enqueue(
                kind=KIND,
                organization_id=server.organization_id,
                subject_type=JobRun.SubjectType.SERVER,
                subject_id=server.pk,
            )
            _update_audited(
                Server.objects.filter(pk=server.pk),
                status=Server.Status.PROVISIONING,
                last_error="",
            )
    except jobs.JobActive:
        return None
    return job


def bastion_sweep(*, limit: int = 100) -> dict[str, int]:
    """Claim pending bastions of every organization and queue a bootstrap for each."""
    claimed = dispatched = 0
    with transaction.atomic():
        # Every organization's bastions: the sweep is platform work.
        pending = list(
            Server.objects.select_for_update(skip_locked=True)
            .filter(role=Server.Role.BASTION, status=Server.Status.PENDING)
            .order_by("updated_at")[:limit]
        )
        for server in pending:
            claimed += 1
            if bastion_bootstrap_start(server=server) is not None:
                dispatched += 1
    if claimed:
        logger.info(
            "bastion sweep",
            extra={"event": "bastion_sweep", "claimed": claimed, "dispatched": dispatched},
        )
    return {"claimed": claimed, "dispatched": dispatched}


def _script() -> bytes:
    path = Path(settings.BASTION_BOOTSTRAP_SCRIPT) if settings.BASTION_BOOTSTRAP_SCRIPT else SCRIPT
    return path.read_bytes()


def bootstrap_command(toggles: dict[str, Any]) -> str:
    """`env K=V ... bash -s`: the toggles are the only values in the command line, each one a
    known name with a quoted value; the script itself goes over stdin."""
    parts = ["env"]
    for name in TOGGLES:
        if name in toggles:
            parts.append(f"{name}={shlex.quote(str(toggles[name]))}")
    parts += ["bash", "-s"]
    return " ".join(parts)


def _usable_bastion(ctx: JobContext) -> Server:
    # The job acts for the server's organization; the row is found by the id it was given.
    subject_id = ctx.job.subject_id
    server = (
        Server.objects.select_related("ssh_key").filter(pk=subject_id).first()
        if subject_id
        else None
    )
    if server is None:
        raise JobFailed("the server no longer exists")
    ctx.log.system(f"claimed bastion {log_quote(server.hostname or server.pk)} ({server.pk})")
    if server.role != Server.Role.BASTION:
        raise JobFailed(f"server {server.pk} is not a bastion (role {server.role})")
    if not server.public_ip_address:
        raise JobFailed("a bastion needs a public IP address")
    try:
        check_server_for_ssh(server)
    except ValidationError as exc:
        raise JobFailed("refusing to use this server: " + "; ".join(exc.messages)) from None
    try:
        ctx.log.add_secret(server.ssh_key.private_key)
    except Exception:  # noqa: BLE001 - a key that cannot be decrypted is a readable failure
        raise JobFailed("the server's SSH key could not be decrypted") from None
    return server


def _run_script(ctx: JobContext, client: ServerSSHClient, server: Server) -> int:
    tail: deque[str] = deque(maxlen=40)

    def output(stream: str, text: str) -> None:
        tail.append(text)
        ctx.log.write(stream, text)

    toggles, guarded = bootstrap_toggles(server)
    if guarded:
        ctx.log.system(
            "the bastion is a loopback address (this machine): the script's blocks that change "
            "a machine are off unless BASTION_BOOTSTRAP_ENV switches them on"
        )
    ctx.log.system("running the bootstrap script")
    try:
        code = client.stream(
            bootstrap_command(toggles),
            on_output=output,
            stdin=_script(),
            stop=ctx.cancel_event,
            deadline=ctx.deadline,
        )
    except CommandStopped:
        raise JobCanceled(ctx.cancel_reason) from None
    except Exception as exc:  # noqa: BLE001
        if ctx.canceled:
            raise JobCanceled(ctx.cancel_reason) from None
        raise JobFailed(
            ssh_errors.describe(exc, host=client.host, port=client.port, user=server.ssh_user)
        ) from None
    if code != 0:
        meaning = ssh_errors.hint("".join(tail))
        raise JobFailed(
            f"bootstrap script exited with status {code}" + (f": {meaning}" if meaning else "")
        )
    return code


def bootstrap_bastion(ctx: JobContext) -> dict[str, Any]:
    """The `bootstrap_bastion` job (see the module docstring)."""
    server = _usable_bastion(ctx)
    host, port, user = str(server.public_ip_address), server.ssh_port, server.ssh_user
    ctx.log.system(f"connecting to {host}:{port} as {user}")
    pinned_before = bool(server.ssh_host_key)
    client = ServerSSHClient(
        server=server,
        host=host,
        timeout=float(settings.SSH_CONNECT_TIMEOUT_SECONDS),
        trust_on_first_use=True,
    )
    try:
        client.connect()
    except Exception as exc:  # noqa: BLE001 - every SSH failure becomes a readable error
        raise JobFailed(ssh_errors.describe(exc, host=host, port=port, user=user)) from None
    unregister = ctx.on_cancel(client.close)
    try:
        if not pinned_before:
            ctx.log.system(f"pinned host key {client.host_key_fingerprint()}")
        _run_script(ctx, client, server)
    finally:
        unregister()
        client.close()
    # A retried job (POST /admin/archer/jobs/{id}/retry) finds its server `failed`.
    _update_audited(
        Server.objects.filter(
            pk=server.pk, status__in=[Server.Status.PROVISIONING, Server.Status.FAILED]
        ),
        status=Server.Status.READY,
        last_error="",
    )
    ctx.log.system("bastion ready")
    return {"server_id": str(server.pk), "status": "ready"}


def bootstrap_failed(job: JobRun, status: str, error: str) -> None:
    """A bootstrap that did not succeed leaves its server `failed` with the reason (an operator
    sets it back to `pending`, or uses "bootstrap now", to try again)."""
    if job.subject_id is None:  # every bootstrap job names its server
        return
    _update_audited(
        Server.objects.filter(
            pk=job.subject_id, status__in=[Server.Status.PROVISIONING, Server.Status.PENDING]
        ),
        status=Server.Status.FAILED,
        last_error=error[:2000],
    )


def bastion_sweep_job(ctx: JobContext) -> dict[str, Any]:
    """A sweep started by hand (POST /admin/archer/jobs type=bastion_sweep), with a record."""
    counts = bastion_sweep()
    ctx.log.system(f"claimed {counts['claimed']} pending bastion(s), queued {counts['dispatched']}")
    return counts

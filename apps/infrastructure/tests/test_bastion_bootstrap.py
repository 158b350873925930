"""Bastion bootstrap against a real sshd on loopback: the real script ships; here its blocks that
change a machine (packages, firewall, sshd, ...) are switched off, so what runs is its harmless
skeleton over a real SSH session."""

from __future__ import annotations

import base64

import paramiko
import pytest

from apps.infrastructure import bootstrap
from apps.infrastructure.clients import fingerprint
from apps.infrastructure.keygen import generate_key_pair
from apps.infrastructure.models import Server
from apps.infrastructure.tests.factories import SSHKeyFactory
from apps.jobs.models import JobLog, JobRun
from apps.jobs.tests.support import bastion_on, run_queued

ALL_OFF = {name: "0" for name in bootstrap.TOGGLES if name != "APT_LOCK_WAIT_SECS"}

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _harmless_script(settings):
    settings.BASTION_BOOTSTRAP_ENV = ALL_OFF
    settings.JOB_HEARTBEAT_SECONDS = 0.2


def _transcript(server: Server) -> str:
    rows = JobLog.objects.filter(subject_type="server", subject_id=server.pk).order_by("id")
    return "".join(row.chunk for row in rows)


def test_the_sweep_moves_a_pending_bastion_to_provisioning_and_queues_one_job(org, sshd_factory):
    server = bastion_on(sshd_factory(), org)

    first = bootstrap.bastion_sweep()
    second = bootstrap.bastion_sweep()

    server.refresh_from_db()
    assert server.status == Server.Status.PROVISIONING
    assert first == {"claimed": 1, "dispatched": 1}
    assert second == {"claimed": 0, "dispatched": 0}
    assert JobRun.objects.filter(kind="bootstrap_bastion", subject_id=server.pk).count() == 1


def test_a_bastion_is_bootstrapped_to_ready_with_its_host_key_pinned_and_a_transcript(
    org, sshd_factory, api
):
    sshd = sshd_factory()
    server = bastion_on(sshd, org)
    bootstrap.bastion_sweep()

    assert run_queued() == [JobRun.Status.SUCCEEDED]

    server.refresh_from_db()
    assert (server.status, server.last_error) == (Server.Status.READY, "")
    algo, blob = sshd.host_public_key.split()[:2]
    assert (server.ssh_host_key_algo, server.ssh_host_key) == (algo, blob)
    text = _transcript(server)
    assert f"connecting to 127.0.0.1:{sshd.port}" in text
    assert "pinned host key SHA256:" in text
    assert "==> step: baseline packages" in text  # the script's own output, streamed
    assert text.index("bastion ready") < text.index("job succeeded in")
    page = api.get(f"/api/v1/servers/{server.pk}/logs").json()
    assert page["done"] is True
    assert "".join(item["chunk"] for item in page["items"]) == text


def test_a_changed_host_key_is_refused_naming_both_fingerprints(org, sshd_factory):
    sshd = sshd_factory()
    server = bastion_on(sshd, org)
    impostor = generate_key_pair(key_type="ed25519").public_key.split()
    Server.objects.filter(pk=server.pk).update(
        ssh_host_key_algo=impostor[0], ssh_host_key=impostor[1]
    )
    bootstrap.bastion_sweep()

    assert run_queued() == [JobRun.Status.FAILED]

    server.refresh_from_db()
    assert server.status == Server.Status.FAILED
    assert "host key" in server.last_error and "changed" in server.last_error
    pinned = fingerprint(paramiko.PKey.from_type_string(impostor[0], base64.b64decode(impostor[1])))
    offered_parts = sshd.host_public_key.split()
    offered = fingerprint(
        paramiko.PKey.from_type_string(offered_parts[0], base64.b64decode(offered_parts[1]))
    )
    assert pinned in server.last_error and offered in server.last_error
    assert server.ssh_host_key == impostor[1]  # the pin is not replaced


def test_a_host_that_refuses_the_key_ends_failed_with_a_readable_error(org, sshd_factory):
    sshd = sshd_factory()
    server = bastion_on(sshd, org)
    Server.objects.filter(pk=server.pk).update(ssh_key=SSHKeyFactory(organization=org))
    bootstrap.bastion_sweep()

    assert run_queued() == [JobRun.Status.FAILED]

    server.refresh_from_db()
    assert server.status == Server.Status.FAILED
    assert "refused the organization's key" in server.last_error
    job = JobRun.objects.get(subject_id=server.pk)
    assert job.error == server.last_error


def test_a_failing_script_fails_the_bastion_with_the_step_and_status(org, sshd_factory, settings):
    sshd = sshd_factory()
    server = bastion_on(sshd, org)
    settings.BASTION_BOOTSTRAP_ENV = {**ALL_OFF, "BANNER": "maybe"}  # refused at preflight
    bootstrap.bastion_sweep()

    assert run_queued() == [JobRun.Status.FAILED]

    server.refresh_from_db()
    assert server.status == Server.Status.FAILED
    assert server.last_error.startswith("bootstrap script exited with status")
    assert "!! bootstrap failed" in _transcript(server)


def test_the_private_key_never_reaches_the_transcript(org, sshd_factory, settings, tmp_path):
    sshd = sshd_factory()
    server = bastion_on(sshd, org)
    secret = server.ssh_key.private_key
    # A stand-in script that prints the key it should never see, and its lines one by one.
    script = tmp_path / "leaky.sh"
    script.write_text("cat <<'EOF'\n" + secret + "\nEOF\necho done\n")
    settings.BASTION_BOOTSTRAP_SCRIPT = str(script)
    bootstrap.bastion_sweep()

    run_queued()

    text = _transcript(server)
    assert "done" in text and "[REDACTED]" in text
    for line in secret.splitlines():
        if len(line) >= 12:
            assert line not in text


def test_a_stored_row_with_an_unsafe_user_is_refused_before_any_connection(org, sshd_factory):
    server = bastion_on(sshd_factory(), org)
    Server.objects.filter(pk=server.pk).update(ssh_user="-oProxyCommand=touch /tmp/pwned")
    bootstrap.bastion_sweep()

    assert run_queued() == [JobRun.Status.FAILED]

    server.refresh_from_db()
    assert server.last_error.startswith("refusing to use this server")
    assert "connecting to" not in _transcript(server)


def test_server_logs_of_another_organization_are_not_found(org, other_org, sshd_factory, api):
    server = bastion_on(sshd_factory(), other_org)

    assert api.get(f"/api/v1/servers/{server.pk}/logs").status_code == 404
    assert api.get(f"/api/v1/servers/{server.pk}/logs/stream").status_code == 404


def test_every_status_a_bootstrap_sets_moves_the_servers_updated_at_and_its_etag(
    org, sshd_factory, api
):
    server = bastion_on(sshd_factory(), org)
    created = server.updated_at
    etag = api.get(f"/api/v1/servers/{server.pk}").headers["ETag"]

    bootstrap.bastion_sweep()
    server.refresh_from_db()
    assert server.status == Server.Status.PROVISIONING
    provisioning = server.updated_at
    assert provisioning > created

    assert run_queued() == [JobRun.Status.SUCCEEDED]
    server.refresh_from_db()
    assert server.status == Server.Status.READY
    assert server.updated_at > provisioning
    # A client holding the old ETag sees that the server changed under it.
    assert api.get(f"/api/v1/servers/{server.pk}").headers["ETag"] != etag


def test_a_loopback_bastion_runs_with_every_machine_block_off_unless_switched_on(
    org, sshd_factory, settings
):
    # Only what is asked for: no block named, except cloud-init (which changes nothing).
    settings.BASTION_BOOTSTRAP_ENV = {"WAIT_CLOUD_INIT": "0", "BANNER": "0"}
    server = bastion_on(sshd_factory(), org)
    bootstrap.bastion_sweep()

    assert run_queued() == [JobRun.Status.SUCCEEDED]
    text = _transcript(server)
    assert "the bastion is a loopback address (this machine)" in text
    for name in bootstrap.MACHINE_BLOCKS:
        assert f"(skipped: {name}=0)" in text


def test_a_routable_bastion_keeps_the_configured_blocks(org, settings):
    from apps.infrastructure.tests.factories import ServerFactory

    settings.BASTION_BOOTSTRAP_ENV = {"FIREWALL": "0"}
    server = ServerFactory.build(organization=org, public_ip_address="203.0.113.7")
    assert bootstrap.bootstrap_toggles(server) == ({"FIREWALL": "0"}, False)


def test_a_loopback_bastion_stored_in_ipv4_mapped_form_is_still_not_hardened(org, settings):
    from apps.infrastructure.tests.factories import ServerFactory

    # The SSH check unmaps ::ffff:127.0.0.1 and lets it through as loopback; the bootstrap
    # must see the same machine, the operator's own.
    settings.BASTION_BOOTSTRAP_ENV = {}
    server = ServerFactory.build(organization=org, public_ip_address="::ffff:127.0.0.1")
    toggles, loopback = bootstrap.bootstrap_toggles(server)
    assert loopback is True
    assert all(toggles[name] == "0" for name in bootstrap.MACHINE_BLOCKS)

"""Where SSH may go: cloud metadata addresses and the operator's deny-list are refused where an
address is entered and again, after DNS, when a job connects; a peer that is not SSH is named by
a fixed message, never by what it sent."""

from __future__ import annotations

import logging

import pytest

from apps.infrastructure import bootstrap
from apps.infrastructure.clients import ServerSSHClient, TargetRefused
from apps.infrastructure.models import Server
from apps.infrastructure.tests.factories import SSHKeyFactory
from apps.infrastructure.tests.sshd import NotSSHServer
from apps.infrastructure.tests.test_servers import URL, _payload
from apps.jobs.models import JobLog, JobRun
from apps.jobs.tests.support import bastion_on, run_queued


@pytest.fixture
def not_ssh():
    server = NotSSHServer()
    yield server
    server.stop()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "address", ["fd00:ec2::254", "100.100.100.200", "168.63.129.16", "169.254.170.2"]
)
@pytest.mark.parametrize("field", ["public_ip_address", "private_ip_address"])
def test_cloud_metadata_addresses_are_refused_as_targets(api, org, address, field):
    response = api.post(
        URL, _payload(SSHKeyFactory(organization=org), **{field: address}), format="json"
    )

    assert response.status_code == 400
    assert response.json()["message"].startswith(f"{field}: ")
    assert Server.objects.count() == 0


@pytest.mark.django_db
def test_addresses_in_the_operators_deny_list_are_refused_and_others_accepted(api, org, settings):
    settings.SSH_TARGET_DENY_CIDRS = ["10.20.0.0/16", "fd12:3456::/48"]
    key = SSHKeyFactory(organization=org)

    for address in ("10.20.4.1", "fd12:3456::9"):
        response = api.post(URL, _payload(key, private_ip_address=address), format="json")
        assert response.status_code == 400
        assert "does not connect to" in response.json()["message"]
    assert (
        api.post(URL, _payload(key, private_ip_address="10.21.0.1"), format="json").status_code
        == 201
    )


@pytest.mark.django_db(transaction=True)
def test_a_stored_bastion_in_a_range_denied_later_is_refused_before_connecting(
    org, settings, not_ssh
):
    server = bastion_on(not_ssh, org)
    settings.SSH_TARGET_DENY_CIDRS = ["127.0.0.0/8"]
    bootstrap.bastion_sweep()

    assert run_queued() == [JobRun.Status.FAILED]

    server.refresh_from_db()
    assert "does not connect to" in server.last_error
    assert not_ssh.accepted == 0


@pytest.mark.django_db
def test_a_host_name_is_checked_after_it_resolves_and_refused_before_a_packet_is_sent(
    org, settings, not_ssh
):
    # "localhost" resolves to loopback; the operator denies loopback (a metadata address would
    # be refused the same way, whatever the setting).
    server = bastion_on(not_ssh, org)
    settings.SSH_TARGET_DENY_CIDRS = ["127.0.0.0/8", "::1/128"]
    client = ServerSSHClient(server=server, host="localhost", trust_on_first_use=True)

    with pytest.raises(TargetRefused, match="refusing to connect to localhost"):
        client.connect()
    assert not_ssh.accepted == 0


@pytest.mark.django_db(transaction=True)
def test_a_peer_that_is_not_ssh_gets_a_fixed_message_and_none_of_its_bytes_are_kept(
    org, not_ssh, caplog
):
    caplog.set_level(logging.DEBUG)
    server = bastion_on(not_ssh, org)
    bootstrap.bastion_sweep()

    assert run_queued() == [JobRun.Status.FAILED]

    server.refresh_from_db()
    job = JobRun.objects.get(subject_id=server.pk)
    transcript = "".join(JobLog.objects.filter(job=job).values_list("chunk", flat=True))
    assert not_ssh.accepted == 1
    assert server.last_error == f"127.0.0.1:{not_ssh.port} did not answer as an SSH server"
    assert job.error == server.last_error
    for kept in (transcript, server.last_error, job.error, caplog.text):
        assert "CANARY-BANNER" not in kept
    assert "did not answer as an SSH server" in caplog.text


@pytest.mark.django_db
def test_a_host_name_that_resolves_to_a_permitted_address_reaches_the_real_sshd(org, sshd_factory):
    # The checked socket tries each address the name resolves to (::1 has no sshd here).
    sshd = sshd_factory()
    server = bastion_on(sshd, org)

    with ServerSSHClient(server=server, host="localhost", trust_on_first_use=True) as client:
        result = client.run("echo reached")

    assert (result.exit_status, result.stdout) == (0, "reached\n")

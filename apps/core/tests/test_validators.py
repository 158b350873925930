"""The syntax of values that reach SSH or a remote shell (apps/core/validators.py)."""

from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError

from apps.core.validators import (
    check_cluster_for_run,
    check_server_for_ssh,
    validate_docker_image,
    validate_docker_tag,
    validate_hostname,
    validate_make_target,
    validate_ssh_user,
    validate_target_ip,
)

# An address to refuse, never one to bind.
UNSPECIFIED = "0.0.0.0"  # noqa: S104


@pytest.mark.parametrize(
    "value",
    ["", "node-1", "db.example.com", "NODE1", "1a", "a", "x" * 63, ".".join(["a" * 63] * 3)],
)
def test_valid_hostnames_are_accepted(value):
    validate_hostname(value)


@pytest.mark.parametrize(
    "value",
    [
        "-node",
        "node-",
        "node_1",
        "node 1",
        "node-1\nevil",
        "node-1\n",
        "node\t1",
        "a..b",
        ".node",
        "node.",
        "x" * 64,
        ".".join(["a" * 63] * 4),
        "nöde",
        "$(reboot)",
        "node;id",
    ],
)
def test_invalid_hostnames_are_refused(value):
    with pytest.raises(ValidationError):
        validate_hostname(value)


@pytest.mark.parametrize("value", ["ubuntu", "_svc", "deploy-1", "ec2_user", "samba$", "a" * 32])
def test_valid_ssh_users_are_accepted(value):
    validate_ssh_user(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "-oProxyCommand=touch /tmp/x",
        "-root",
        "Ubuntu",
        "1user",
        "ubuntu\n",
        "us er",
        "root@host",
        "a$b",
        "a" * 33,
    ],
)
def test_invalid_ssh_users_are_refused(value):
    with pytest.raises(ValidationError):
        validate_ssh_user(value)


@pytest.mark.parametrize(
    "value", ["10.0.0.5", "192.168.1.10", "172.16.0.1", "203.0.113.10", "8.8.8.8", "fd00::1"]
)
def test_private_and_public_addresses_are_allowed_targets(value):
    validate_target_ip(value, allow_private_test_targets=False)


@pytest.mark.parametrize(
    "value",
    [
        "127.0.0.1",
        "127.1.2.3",
        "::1",
        "::ffff:127.0.0.1",
        "169.254.169.254",
        "169.254.0.1",
        "fe80::1",
        "224.0.0.1",
        "ff02::1",
        UNSPECIFIED,
        "0.1.2.3",
        "::",
        "255.255.255.255",
        "240.0.0.1",
        "not-an-ip",
    ],
)
def test_loopback_link_local_multicast_unspecified_and_reserved_targets_are_refused(value):
    with pytest.raises(ValidationError):
        validate_target_ip(value, allow_private_test_targets=False)


def test_loopback_is_allowed_only_when_test_targets_are_allowed():
    validate_target_ip("127.0.0.1", allow_private_test_targets=True)
    with pytest.raises(ValidationError):
        validate_target_ip("169.254.169.254", allow_private_test_targets=True)


def test_the_setting_decides_when_the_caller_does_not(settings):
    settings.AUTOGLUE_ALLOW_LOOPBACK_TARGETS = False
    with pytest.raises(ValidationError):
        validate_target_ip("127.0.0.1")
    settings.AUTOGLUE_ALLOW_LOOPBACK_TARGETS = True
    validate_target_ip("127.0.0.1")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "ubuntu",
        "library/ubuntu",
        "ghcr.io/glueops/tools",
        "localhost:5000/team/app",
        "registry.example.com:443/a/b/c",
        "my_org/my__app",
        "a.b-c--d",
    ],
)
def test_valid_docker_images_are_accepted(value):
    validate_docker_image(value)


@pytest.mark.parametrize(
    "value",
    [
        "Ubuntu",
        "ghcr.io/GlueOps/tools",
        "ghcr.io/glueops/tools:v1",
        "ubuntu@sha256:" + "a" * 64,
        "ubuntu;id",
        "ubuntu tools",
        "ubuntu\n",
        "-ubuntu",
        "/ubuntu",
        "ubuntu/",
        "a//b",
        "a___b",
        "$(id)",
        "a" * 256,
    ],
)
def test_invalid_docker_images_are_refused(value):
    with pytest.raises(ValidationError):
        validate_docker_image(value)


@pytest.mark.parametrize("value", ["", "v1", "v1.0.0", "latest", "_x", "A-b_c.d", "a" * 128])
def test_valid_docker_tags_are_accepted(value):
    validate_docker_tag(value)


@pytest.mark.parametrize(
    "value", [".v1", "-v1", "v1;id", "v 1", "v1\n", "v1:2", "v1/2", "a" * 129, "$(id)"]
)
def test_invalid_docker_tags_are_refused(value):
    with pytest.raises(ValidationError):
        validate_docker_tag(value)


@pytest.mark.parametrize("value", ["setup", "k3s.install", "_internal", "a-b_c.d", "x" * 255])
def test_valid_make_targets_are_accepted(value):
    validate_make_target(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "ping; rm -rf /",
        "-f/etc/passwd",
        "--eval=x",
        "setup\n",
        "a b",
        "a/b",
        "$(id)",
        "`id`",
        "x" * 256,
    ],
)
def test_invalid_make_targets_are_refused(value):
    with pytest.raises(ValidationError):
        validate_make_target(value)


def _server(**overrides):
    fields = {
        "pk": "srv-1",
        "hostname": "node-1",
        "ssh_user": "ubuntu",
        "public_ip_address": None,
        "private_ip_address": "10.0.0.5",
        "ssh_port": 22,
    }
    return SimpleNamespace(**{**fields, **overrides})


def test_a_good_server_row_passes_the_ssh_check():
    check_server_for_ssh(_server())
    check_server_for_ssh(_server(public_ip_address="203.0.113.7", hostname=""))


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"hostname": "node\nevil"}, "hostname"),
        ({"ssh_user": "-oProxyCommand=touch /tmp/x"}, "ssh_user"),
        ({"public_ip_address": "169.254.169.254"}, "public_ip_address"),
        ({"private_ip_address": UNSPECIFIED}, "private_ip_address"),
        ({"ssh_port": 0}, "ssh_port"),
        ({"ssh_port": 70000}, "ssh_port"),
    ],
)
def test_the_ssh_check_refuses_a_bad_row_naming_the_field(settings, overrides, field):
    settings.AUTOGLUE_ALLOW_LOOPBACK_TARGETS = False
    with pytest.raises(ValidationError) as caught:
        check_server_for_ssh(_server(**overrides))
    [message] = caught.value.messages
    assert message.startswith(f"server srv-1: {field}: ")


def test_the_ssh_check_names_every_bad_field_without_echoing_values():
    with pytest.raises(ValidationError) as caught:
        check_server_for_ssh(_server(hostname="x\ny", ssh_user="-oEvil"))
    text = "; ".join(caught.value.messages)
    assert "hostname:" in text
    assert "ssh_user:" in text
    assert "-oEvil" not in text


def test_the_run_check_refuses_a_bad_image_or_tag_naming_the_field():
    check_cluster_for_run(SimpleNamespace(pk=1, docker_image="ghcr.io/a/b", docker_tag="v1"))
    check_cluster_for_run(SimpleNamespace(pk=1, docker_image="", docker_tag=""))
    with pytest.raises(ValidationError) as caught:
        check_cluster_for_run(SimpleNamespace(pk=1, docker_image="a;id", docker_tag="-x"))
    assert [m.split(": ")[1] for m in caught.value.messages] == ["docker_image", "docker_tag"]


@pytest.mark.parametrize(
    "value",
    [
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254, the metadata service
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2001:0:cb00:710a::5601:5601",  # Teredo, client 169.254.169.254 (obfuscated)
        "2001:0:a9fe:a9fe::1",  # Teredo, server 169.254.169.254
        "fd20:ce::254",  # GCP's IPv6 metadata service
    ],
)
def test_metadata_and_loopback_addresses_embedded_in_6to4_or_teredo_are_refused(value):
    with pytest.raises(ValidationError):
        validate_target_ip(value, allow_private_test_targets=False)


def test_a_denied_range_is_refused_through_its_6to4_and_teredo_forms(settings):
    settings.SSH_TARGET_DENY_CIDRS = ["10.20.0.0/16"]
    for value in ("2002:a14:105::1", "2001:0:a14:105::34ff:8ef5"):
        with pytest.raises(ValidationError) as caught:
            validate_target_ip(value, allow_private_test_targets=False)
        assert "does not connect to" in caught.value.messages[0]
    # A public 6to4 address is still a server one may reach.
    validate_target_ip("2002:cb00:710::1", allow_private_test_targets=False)
    validate_target_ip("2001:0:cb00:710a::34ff:8ef5", allow_private_test_targets=False)

import base64
import hashlib
import io
import logging
import zipfile

import paramiko
import pytest

from apps.infrastructure.models import SSHKey
from apps.infrastructure.tests.factories import ServerFactory, SSHKeyFactory

URL = "/api/v1/ssh"


def _log_text(caplog) -> str:
    return "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)


# --- create ----------------------------------------------------------------------------------


def test_creating_an_ed25519_key_returns_openssh_public_key_and_sha256_fingerprint(api, org):
    response = api.post(
        URL, {"name": "deploy", "type": "ed25519", "comment": "deploy@acme"}, format="json"
    )

    assert response.status_code == 201
    body = response.json()
    assert set(body) >= {"id", "organization_id", "name", "public_key", "fingerprint"}
    assert "private_key" not in body
    assert body["organization_id"] == str(org.pk)
    kind, blob, comment = body["public_key"].split()
    assert (kind, comment) == ("ssh-ed25519", "deploy@acme")
    digest = base64.b64encode(hashlib.sha256(base64.b64decode(blob)).digest()).decode()
    assert body["fingerprint"] == "SHA256:" + digest.rstrip("=")


def test_created_private_keys_load_in_paramiko_for_rsa_and_ed25519(api):
    rsa = api.post(URL, {"name": "r", "type": "rsa", "bits": 2048}, format="json").json()
    ed = api.post(URL, {"name": "e", "type": "ed25519"}, format="json").json()

    rsa_key = SSHKey.objects.get(pk=rsa["id"])
    ed_key = SSHKey.objects.get(pk=ed["id"])
    assert rsa_key.private_key.startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert ed_key.private_key.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    loaded_rsa = paramiko.RSAKey.from_private_key(io.StringIO(rsa_key.private_key))
    loaded_ed = paramiko.Ed25519Key.from_private_key(io.StringIO(ed_key.private_key))
    assert loaded_rsa.get_bits() == 2048
    assert rsa["public_key"] == f"ssh-rsa {loaded_rsa.get_base64()}"
    assert ed["public_key"] == f"ssh-ed25519 {loaded_ed.get_base64()}"


def test_rsa_is_the_default_type_with_4096_bits(api):
    body = api.post(URL, {"name": "default"}, format="json").json()

    key = SSHKey.objects.get(pk=body["id"])
    assert body["public_key"].startswith("ssh-rsa ")
    assert paramiko.RSAKey.from_private_key(io.StringIO(key.private_key)).get_bits() == 4096


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"name": "x", "type": "dsa"}, "invalid_type"),
        ({"name": "x", "type": "rsa", "bits": 1024}, "invalid_bits"),
        ({"name": "x", "type": "rsa", "bits": "2048"}, "invalid_bits"),
        ({"name": "x", "type": "ed25519", "bits": 2048}, "invalid_bits_for_type"),
        ({"type": "ed25519"}, "validation_error"),
    ],
)
def test_bad_key_requests_are_400_with_the_contract_code(api, payload, code):
    response = api.post(URL, payload, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == code
    assert SSHKey.objects.count() == 0


def test_a_viewer_cannot_create_a_key(client_for, viewer, org):
    response = client_for(viewer, org).post(URL, {"name": "x", "type": "ed25519"}, format="json")

    assert response.status_code == 403


# --- list ------------------------------------------------------------------------------------


def test_list_shows_server_count_and_never_private_material(api, org):
    used = SSHKeyFactory(organization=org, name="used")
    unused = SSHKeyFactory(organization=org, name="unused")
    ServerFactory.create_batch(2, organization=org, ssh_key=used)

    response = api.get(URL)

    assert response.status_code == 200
    counts = {item["name"]: item["server_count"] for item in response.json()}
    assert counts == {"used": 2, "unused": 0}
    text = response.content.decode()
    for key in (used, unused):
        assert key.private_key.splitlines()[1] not in text
    assert "private" not in text


def test_unattached_filter_lists_only_keys_no_server_uses(api, org):
    used = SSHKeyFactory(organization=org, name="used")
    SSHKeyFactory(organization=org, name="unused")
    ServerFactory(organization=org, ssh_key=used)

    response = api.get(URL, {"unattached": "true"})

    assert [item["name"] for item in response.json()] == ["unused"]


def test_list_query_count_does_not_grow_with_keys_or_servers(
    api, org, django_assert_max_num_queries
):
    SSHKeyFactory(organization=org)
    with django_assert_max_num_queries(4) as few:
        api.get(URL)
    for _ in range(5):
        key = SSHKeyFactory(organization=org)
        ServerFactory.create_batch(2, organization=org, ssh_key=key)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = api.get(URL)
    assert len(response.json()) == 6


def test_list_shows_only_this_orgs_keys(api, org, other_org):
    SSHKeyFactory(organization=org, name="mine")
    SSHKeyFactory(organization=other_org, name="theirs")

    assert [item["name"] for item in api.get(URL).json()] == ["mine"]


# --- get / reveal ----------------------------------------------------------------------------


def test_get_without_reveal_has_no_private_key(api, org):
    key = SSHKeyFactory(organization=org)

    body = api.get(f"{URL}/{key.pk}").json()

    assert body["id"] == str(key.pk)
    assert body["server_count"] == 0
    assert "private_key" not in body


@pytest.mark.parametrize("who", ["owner", "admin_user"])
def test_owners_and_admins_can_reveal_a_private_key_and_it_is_audited(
    request, client_for, org, who, caplog
):
    user = request.getfixturevalue(who)
    key = SSHKeyFactory(organization=org)

    with caplog.at_level(logging.INFO):
        response = client_for(user, org).get(f"{URL}/{key.pk}", {"reveal": "true"})

    assert response.status_code == 200
    assert response.json()["private_key"] == key.private_key
    assert "server_count" not in response.json()
    events = [r for r in caplog.records if getattr(r, "event", None) == "secret_revealed"]
    assert len(events) == 1
    assert events[0].resource_id == str(key.pk)
    assert key.private_key.splitlines()[1] not in _log_text(caplog)


def test_an_org_key_can_reveal_a_private_key(org_key_client, org):
    key = SSHKeyFactory(organization=org)

    response = org_key_client(org).get(f"{URL}/{key.pk}?reveal=true")

    assert response.status_code == 200
    assert response.json()["private_key"] == key.private_key


@pytest.mark.parametrize("who", ["member", "viewer"])
def test_members_and_viewers_cannot_reveal_a_private_key(request, client_for, org, who):
    user = request.getfixturevalue(who)
    key = SSHKeyFactory(organization=org)

    response = client_for(user, org).get(f"{URL}/{key.pk}?reveal=true")

    assert response.status_code == 403
    assert key.private_key.splitlines()[1] not in response.content.decode()


def test_a_malformed_key_id_is_400(api):
    assert api.get(f"{URL}/not-a-uuid").status_code == 400


# --- download --------------------------------------------------------------------------------


def test_downloading_the_public_part_is_a_text_attachment_for_any_reader(client_for, viewer, org):
    key = SSHKeyFactory(organization=org)

    response = client_for(viewer, org).get(f"{URL}/{key.pk}/download", {"part": "public"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert f'filename="{key.pk}.pub"' in response["Content-Disposition"]
    assert response.content.decode().strip() == key.public_key


def test_downloading_the_private_part_is_a_pem_attachment(client_for, admin_user, org):
    key = SSHKeyFactory(organization=org)

    response = client_for(admin_user, org).get(f"{URL}/{key.pk}/download?part=private")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-pem-file"
    assert f'filename="{key.pk}.pem"' in response["Content-Disposition"]
    assert response.content.decode() == key.private_key


def test_downloading_both_parts_is_a_zip_with_pem_and_pub(client_for, owner, org):
    key = SSHKeyFactory(organization=org)

    response = client_for(owner, org).get(f"{URL}/{key.pk}/download?part=both")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert f'filename="ssh_key_{key.pk}.zip"' in response["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert sorted(archive.namelist()) == sorted([f"{key.pk}.pem", f"{key.pk}.pub"])
    assert archive.read(f"{key.pk}.pem").decode() == key.private_key


def test_json_mode_download_carries_the_part_and_file_names(org_key_client, org):
    key = SSHKeyFactory(organization=org)
    client = org_key_client(org)

    private = client.get(f"{URL}/{key.pk}/download?part=private&mode=json").json()
    both = client.get(f"{URL}/{key.pk}/download?part=both&mode=json").json()

    assert private["private_pem"] == key.private_key
    assert private["filenames"] == [f"{key.pk}.pem"]
    assert both["filenames"] == [f"{key.pk}.zip", f"{key.pk}.pem", f"{key.pk}.pub"]
    archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(both["zip_base64"])))
    assert archive.read(f"{key.pk}.pub").decode().strip() == key.public_key


@pytest.mark.parametrize("part", ["private", "both"])
@pytest.mark.parametrize("who", ["member", "viewer"])
def test_members_and_viewers_cannot_download_private_parts(request, client_for, org, who, part):
    user = request.getfixturevalue(who)
    key = SSHKeyFactory(organization=org)

    response = client_for(user, org).get(f"{URL}/{key.pk}/download?part={part}")

    assert response.status_code == 403


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", "invalid_ssh_part"),
        ("?part=secret", "invalid_ssh_part"),
        ("?part=public&mode=xml", "invalid_mode"),
    ],
)
def test_bad_download_parameters_are_400(api, org, query, code):
    key = SSHKeyFactory(organization=org)

    response = api.get(f"{URL}/{key.pk}/download{query}")

    assert response.status_code == 400
    assert response.json()["code"] == code


# --- delete ----------------------------------------------------------------------------------


def test_deleting_an_unused_key_is_204(api, org):
    key = SSHKeyFactory(organization=org)

    assert api.delete(f"{URL}/{key.pk}").status_code == 204
    assert not SSHKey.objects.filter(pk=key.pk).exists()


def test_deleting_a_key_a_server_uses_is_409_and_keeps_it(api, org):
    key = SSHKeyFactory(organization=org)
    ServerFactory(organization=org, ssh_key=key)

    response = api.delete(f"{URL}/{key.pk}")

    assert response.status_code == 409
    assert response.json()["code"] == "ssh_key_in_use"
    assert "1 server" in response.json()["message"]
    assert SSHKey.objects.filter(pk=key.pk).exists()


# --- other organizations ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "suffix"),
    [
        ("get", ""),
        ("get", "?reveal=true"),
        ("get", "/download?part=public"),
        ("get", "/download?part=both"),
        ("delete", ""),
    ],
)
def test_another_orgs_key_is_404_for_users_and_org_keys(
    client_for, outsider, owner, org, other_org, org_key_client, method, suffix
):
    theirs = SSHKeyFactory(organization=other_org)
    for client in (client_for(owner, org), org_key_client(org)):
        response = getattr(client, method)(f"{URL}/{theirs.pk}{suffix}")
        assert response.status_code == 404
        assert response.json()["code"] == "ssh_key_not_found"
    assert SSHKey.objects.filter(pk=theirs.pk).exists()


def test_an_org_key_lists_only_its_orgs_keys(org_key_client, org, other_org):
    SSHKeyFactory(organization=org, name="mine")
    SSHKeyFactory(organization=other_org, name="theirs")

    assert [item["name"] for item in org_key_client(org).get(URL).json()] == ["mine"]


def test_a_download_is_not_refused_for_a_file_accept_header(client_for, owner, org):
    key = SSHKeyFactory(organization=org)

    response = client_for(owner, org).get(
        f"{URL}/{key.pk}/download?part=both", HTTP_ACCEPT="application/zip"
    )

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("comment", "ops@example.com\nssh-ed25519 AAAAC3Nz attacker"),
        ("comment", "tab\there"),
        ("comment", "carriage\rreturn"),
        ("comment", "escape\x1b[31m"),
        ("name", "line\nbreak"),
        ("name", "bell\x07"),
    ],
)
def test_a_control_character_in_name_or_comment_is_400_naming_the_field(api, field, value):
    payload = {"name": "deploy", "type": "ed25519", "comment": "ops@example.com", field: value}

    response = api.post(URL, payload, format="json")

    assert response.status_code == 400
    assert response.json()["message"].startswith(f"{field}:")
    assert SSHKey.objects.count() == 0


def test_a_plain_comment_ends_the_one_line_public_key(api):
    response = api.post(
        URL, {"name": "deploy", "type": "ed25519", "comment": "ops@example.com"}, format="json"
    )

    assert response.status_code == 201
    public_key = response.json()["public_key"]
    assert "\n" not in public_key and public_key.endswith(" ops@example.com")

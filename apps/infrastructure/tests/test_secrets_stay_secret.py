"""Walk every secret-bearing route once and grep everything a user or operator can see — list
responses, log lines, the stored column — for the secrets."""

import json
import logging

from apps.infrastructure.models import Credential, SSHKey

SECRET = "CANARY-walk-secret-access-key"


def test_no_private_key_or_credential_secret_reaches_lists_logs_or_the_database_column(
    client_for, owner, org, caplog
):
    client = client_for(owner, org)
    with caplog.at_level(logging.DEBUG):
        key = client.post("/api/v1/ssh", {"name": "k", "type": "ed25519"}, format="json").json()
        server = client.post(
            "/api/v1/servers",
            {
                "private_ip_address": "10.0.0.9",
                "ssh_user": "ubuntu",
                "ssh_key_id": key["id"],
                "role": "worker",
            },
            format="json",
        )
        credential = client.post(
            "/api/v1/credentials",
            {
                "credential_provider": "aws",
                "kind": "aws_access_key",
                "schema_version": 1,
                "scope_kind": "service",
                "scope_version": 1,
                "scope": {"service": "s3"},
                "secret": {"access_key_id": "AKIAABCDEFGHIJKLMNOP", "secret_access_key": SECRET},
            },
            format="json",
        ).json()
        client.patch(
            f"/api/v1/credentials/{credential['id']}",
            {
                "secret": {
                    "access_key_id": "AKIAABCDEFGHIJKLMNOP",
                    "secret_access_key": SECRET + "2",
                }
            },
            format="json",
        )
        revealed_key = client.get(f"/api/v1/ssh/{key['id']}?reveal=true").json()["private_key"]
        revealed = client.post(f"/api/v1/credentials/{credential['id']}/reveal").json()
        client.get(f"/api/v1/ssh/{key['id']}/download?part=both")
        lists = [
            client.get(url).content.decode()
            for url in (
                "/api/v1/ssh",
                "/api/v1/servers",
                "/api/v1/credentials",
                f"/api/v1/ssh/{key['id']}",
            )
        ]

    assert server.status_code == 201
    assert revealed["secret_access_key"] == SECRET + "2"
    private_body = "".join(revealed_key.splitlines()[1:-1])
    logged = "\n".join(
        f"{r.getMessage()} {json.dumps(r.__dict__, default=str)}" for r in caplog.records
    )
    for text in [*lists, logged]:
        assert "CANARY" not in text
        assert private_body[:40] not in text
    stored_key = SSHKey.objects.filter(pk=key["id"]).values_list("private_key", flat=True).get()
    stored_secret = (
        Credential.objects.filter(pk=credential["id"]).values_list("secret", flat=True).get()
    )
    assert private_body[:40] not in stored_key
    assert "CANARY" not in stored_secret

"""Data key rotation meeting real writes and reads through the API: a crashed `rotate-org`
resumes onto the same version, a stale save cannot bring back an envelope whose key `prune`
deleted, and decrypting under an old platform version never makes it the one new secrets use."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from apps.accounts import jwt as access_tokens
from apps.accounts import services as account_services
from apps.accounts.models import SigningKey
from apps.core.crypto.envelope import envelope_prefix
from apps.core.crypto.keys import clear_key_cache
from apps.core.crypto.rotation import data_key_rotate, data_keys_prune, org_data_key_rotate
from apps.core.management.commands.encrypt import Command as EncryptCommand
from apps.core.models import DataKey
from apps.infrastructure import services as infrastructure_services
from apps.infrastructure.models import Credential
from apps.infrastructure.tests.factories import CredentialFactory

URL = "/api/v1/credentials"


class Crash(Exception):
    """Stands in for the process dying (kill, time limit) between two batches."""


@pytest.fixture(autouse=True)
def _fresh_key_cache():
    clear_key_cache()
    access_tokens.reset_keyring()
    yield
    clear_key_cache()
    access_tokens.reset_keyring()


@pytest.fixture
def owner_api(client_for, owner, org) -> APIClient:
    return client_for(owner, org)


def _reveal(client: APIClient, credential_id) -> dict:
    response = client.post(f"{URL}/{credential_id}/reveal")
    assert response.status_code == 200, response.content
    return response.json()


def _versions(org) -> list[int]:
    return list(DataKey.objects.filter(organization=org).values_list("version", flat=True))


def test_a_rotation_that_dies_at_the_same_point_every_run_still_finishes(
    owner_api, org, monkeypatch
):
    credentials = CredentialFactory.create_batch(5, organization=org)
    real_progress = EncryptCommand._progress

    def dies_after_two_rows(self, stage, done, total):
        real_progress(self, stage, done, total)
        if done >= 2:
            raise Crash

    monkeypatch.setattr(EncryptCommand, "_progress", dies_after_two_rows)
    for _run in range(5):
        out = io.StringIO()
        try:
            call_command("encrypt", "rotate-org", str(org.pk), "--batch-size", "2", stdout=out)
            break
        except Crash:
            continue
    else:
        pytest.fail("the rotation never finished")

    # One new version, and every secret moved onto it.
    assert _versions(org) == [1, 2]
    newest = DataKey.objects.get(organization=org, version=2)
    stored = Credential.objects.values_list("secret", flat=True)
    assert all(value.startswith(envelope_prefix(newest.id)) for value in stored)
    for credential in credentials:
        assert _reveal(owner_api, credential.pk)["secret_access_key"] == f"CANARY-{credential.name}"


def test_a_rotation_rerun_after_a_crash_reports_that_it_resumed(org, monkeypatch):
    CredentialFactory.create_batch(3, organization=org)

    def crash(stage, done, total):
        if done >= 1:
            raise Crash

    with pytest.raises(Crash):
        org_data_key_rotate(organization_id=org.pk, batch_size=1, progress=crash)
    out = io.StringIO()
    call_command("encrypt", "rotate-org", str(org.pk), stdout=out)

    assert "Resumed the unfinished rotation onto version 2." in out.getvalue()
    assert "Done: 2/2 secrets re-encrypted." in out.getvalue()
    # A finished rotation is not "unfinished": the next run adds a version.
    call_command("encrypt", "rotate-org", str(org.pk), stdout=io.StringIO())
    assert _versions(org) == [1, 2, 3]


def test_renaming_a_credential_while_its_key_is_rotated_and_pruned_keeps_the_secret(
    owner_api, org, settings, monkeypatch
):
    created = owner_api.post(
        URL,
        {
            "credential_provider": "aws",
            "kind": "aws_access_key",
            "schema_version": 1,
            "name": "route53",
            "scope_kind": "service",
            "scope_version": 1,
            "scope": {"service": "route53"},
            "secret": {"access_key_id": "AKIAABCDEFGHIJKLMNOP", "secret_access_key": "CANARY-s"},
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    credential_id = created.json()["id"]
    # Prune may run at once (the key cache lifetime is over) and nothing is cached.
    settings.AUTOGLUE_DATA_KEY_CACHE_SECONDS = -10
    real_save = infrastructure_services._save_credential
    pruned: list[int] = []

    def rotate_and_prune_before_the_save(credential):
        # The PATCH loaded the row (its v1 envelope); meanwhile a rotation moves the secret to
        # v2 and prune deletes v1, which nothing references any more.
        org_data_key_rotate(organization_id=org.pk)
        pruned.extend(data_keys_prune(organization_id=org.pk))
        return real_save(credential)

    monkeypatch.setattr(
        infrastructure_services, "_save_credential", rotate_and_prune_before_the_save
    )
    response = owner_api.patch(f"{URL}/{credential_id}", {"name": "renamed"}, format="json")

    assert response.status_code == 200, response.content
    assert pruned == [1]
    assert _versions(org) == [2]
    monkeypatch.undo()
    assert _reveal(owner_api, credential_id)["secret_access_key"] == "CANARY-s"


@pytest.mark.django_db(transaction=True)
def test_decrypting_under_an_old_platform_version_does_not_make_it_current(member):
    # Committed keys, so each process-cache entry is made as in production.
    account_services.signing_key_generate(bits=2048)
    pair = account_services.token_pair_issue(user=member)
    old = DataKey.objects.get(organization=None)
    new = data_key_rotate(organization_id=None)
    clear_key_cache()
    access_tokens.reset_keyring()

    # Signing a token decrypts the signing key's private part, still under the old version.
    response = APIClient().post(
        "/api/v1/auth/refresh", {"refresh_token": pair.refresh_token}, format="json"
    )
    assert response.status_code == 200, response.content
    assert str(SigningKey.objects.values_list("private_pem", flat=True).get()).startswith(
        envelope_prefix(old.id)
    )

    # A platform secret written afterwards in this process uses the newest version.
    account_services.signing_key_generate(bits=2048)
    newest_envelope = SigningKey.objects.order_by("-created_at").values_list(
        "private_pem", flat=True
    )[0]
    assert str(newest_envelope).startswith(envelope_prefix(new.id))

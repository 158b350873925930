"""Rotation online, a dump without the master key, and the canary sweep (R5, R6, P10).

These tests commit (readers on other threads and pg_dump only see committed rows), so they use
`transactional_db` and create the throwaway tables for real.
"""

from __future__ import annotations

import io
import logging
import random
import re
import shutil
import subprocess
import threading
from itertools import count

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.core.management import call_command
from django.db import connection

from apps.core.crypto.envelope import NONCE_BYTES, b64d, parse_envelope
from apps.core.crypto.keys import clear_key_cache, data_key_for_decrypt
from apps.core.crypto.master import format_entry, generate_master_key, parse_master_keys
from apps.core.crypto.rotation import (
    data_key_references,
    data_key_rotate,
    data_keys_prune,
    master_key_rotate,
    secrets_reencrypt,
)
from apps.core.crypto.values import SecretContext
from apps.core.models import DataKey
from apps.core.tests.crypto_support import CANARY, secret_models
from apps.orgs.tests.factories import OrganizationFactory

NEW_MASTER = generate_master_key()


@pytest.fixture(autouse=True)
def _fresh_key_cache():
    clear_key_cache()
    yield
    clear_key_cache()


@pytest.fixture
def models_(transactional_db):
    with secret_models(drop=True) as pair:
        yield pair


def _ring(settings, *, old: bool, new: bool, active: str):
    entries = []
    current = settings.AUTOGLUE_MASTER_KEYS
    if old:
        entries.append(format_entry("test-master", current.get("test-master") or b"B" * 32))
    if new:
        entries.append(format_entry("new-master", NEW_MASTER))
    return parse_master_keys(",".join(entries), active)


def _seed(org_model, platform_model, *, orgs: int, per_org: int, platform: int):
    """Rows whose name is the index of their canary plaintext."""
    counter = count()
    organizations = [OrganizationFactory() for _ in range(orgs)]
    for organization in organizations:
        org_model.objects.bulk_create(
            [
                org_model(organization=organization, name=str(i), secret=f"{CANARY}-{i}")
                for i in (next(counter) for _ in range(per_org))
            ],
            batch_size=1000,
        )
    platform_model.objects.bulk_create(
        [platform_model(secret=f"{CANARY}-p{i}") for i in range(platform)]
    )
    return organizations


class Reader(threading.Thread):
    """Decrypts random rows continuously on its own connection, counting reads and errors."""

    def __init__(self, org_model, pks):
        super().__init__(daemon=True)
        self.model, self.pks = org_model, pks
        self.stop = threading.Event()
        self.reads = 0
        self.errors: list[str] = []

    def run(self):
        rng = random.Random(7)  # noqa: S311 - test sampling, not crypto
        try:
            rounds = 0
            while not self.stop.is_set():
                rounds += 1
                if rounds % 5 == 0:
                    clear_key_cache()  # force unwraps mid-rotation, not just cache hits
                sample = rng.sample(self.pks, 50)
                for row in self.model.objects.filter(pk__in=sample):
                    try:
                        if row.secret != f"{CANARY}-{row.name}":
                            self.errors.append(f"wrong plaintext in {row.pk}")
                    except Exception as exc:  # noqa: BLE001 - every failure counts
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                    self.reads += 1
        finally:
            connection.close()


@pytest.mark.slow
def test_rotating_master_and_org_keys_over_10000_secrets_under_load_loses_nothing(
    models_, settings
):
    org_model, platform_model = models_
    organizations = _seed(org_model, platform_model, orgs=10, per_org=1000, platform=20)
    pks = list(org_model.objects.values_list("pk", flat=True))
    assert len(pks) == 10_000

    # Operator step 1: the new master key is configured everywhere and made active.
    settings.AUTOGLUE_MASTER_KEYS = _ring(settings, old=True, new=True, active="new-master")
    reader = Reader(org_model, pks)
    reader.start()
    try:
        out = io.StringIO()
        # Small batches so the 11 data keys really are re-wrapped in several statements.
        call_command("encrypt", "rotate-master", "--batch-size", "4", stdout=out)
        assert "Done: 11/11 data keys re-wrapped." in out.getvalue()
        for organization in organizations:
            out = io.StringIO()
            call_command("encrypt", "rotate-org", str(organization.pk), stdout=out)
            assert "Done: 1000/1000 secrets re-encrypted." in out.getvalue()
        call_command("encrypt", "rotate-org", "platform", stdout=io.StringIO())
    finally:
        reader.stop.set()
        reader.join(timeout=60)
    assert reader.reads > 500
    assert reader.errors == []

    # Every data key is now wrapped by the new master key and every secret is under version 2.
    assert set(DataKey.objects.values_list("master_key_id", flat=True)) == {"new-master"}
    for organization in organizations:
        counts = data_key_references(organization_id=organization.pk)
        assert sorted(counts.values()) == [0, 1000]

    # Operator step 2: retire the old master key. Everything still decrypts, in a fresh cache.
    settings.AUTOGLUE_MASTER_KEYS = _ring(settings, old=False, new=True, active="new-master")
    clear_key_cache()
    rows = list(org_model.objects.all())
    assert sum(row.secret == f"{CANARY}-{row.name}" for row in rows) == 10_000
    assert all(row.secret.startswith(CANARY) for row in platform_model.objects.all())


def test_master_key_rotation_resumes_after_a_crash(models_, settings):
    org_model, platform_model = models_
    _seed(org_model, platform_model, orgs=6, per_org=2, platform=1)
    settings.AUTOGLUE_MASTER_KEYS = _ring(settings, old=True, new=True, active="new-master")

    def crash_after_first_batch(stage, done, total):
        if done >= 2:
            raise KeyboardInterrupt  # stands in for kill -9 between two batches

    with pytest.raises(KeyboardInterrupt):
        master_key_rotate(batch_size=2, progress=crash_after_first_batch)
    wrapped_by = list(DataKey.objects.values_list("master_key_id", flat=True))
    assert wrapped_by.count("new-master") == 2

    result = master_key_rotate(batch_size=2)
    assert (result.total, result.done, result.failures) == (5, 5, [])
    settings.AUTOGLUE_MASTER_KEYS = _ring(settings, old=False, new=True, active="new-master")
    assert all(row.secret.startswith(CANARY) for row in org_model.objects.all())


def test_reencryption_resumes_after_a_crash_and_old_versions_are_pruned(models_, settings):
    org_model, platform_model = models_
    (organization,) = _seed(org_model, platform_model, orgs=1, per_org=30, platform=0)
    data_key_rotate(organization_id=organization.pk)

    def crash(stage, done, total):
        if done >= 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        secrets_reencrypt(organization_id=organization.pk, batch_size=10, progress=crash)
    assert sorted(data_key_references(organization_id=organization.pk).values()) == [10, 20]

    result = secrets_reencrypt(organization_id=organization.pk, batch_size=10)
    assert (result.total, result.done, result.failures) == (20, 20, [])
    # Too early: another process may still hold the old version as its active key.
    assert data_keys_prune(organization_id=organization.pk) == []
    settings.AUTOGLUE_DATA_KEY_CACHE_SECONDS = -10
    assert data_keys_prune(organization_id=organization.pk) == [1]
    clear_key_cache()
    assert all(row.secret.startswith(CANARY) for row in org_model.objects.all())


def test_a_write_that_lands_between_read_and_update_is_never_overwritten(models_):
    from apps.core.crypto.rotation import _cas_update
    from apps.core.crypto.values import reencrypt_value

    org_model, platform_model = models_
    (organization,) = _seed(org_model, platform_model, orgs=1, per_org=2, platform=0)
    new_key = data_key_rotate(organization_id=organization.pk)
    # The rotation read both rows...
    batch = list(org_model.objects.order_by("pk").values_list("pk", "secret"))
    updates = [
        (
            pk,
            str(stored),
            reencrypt_value(
                str(stored),
                key=new_key,
                context=SecretContext(
                    model="core.testorgsecret",
                    field="secret",
                    pk=str(pk),
                    organization_id=organization.pk,
                ),
            ),
        )
        for pk, stored in batch
    ]
    # ...then a user saved a new value in one of them, before the rotation's UPDATE ran.
    edited = org_model.objects.get(pk=batch[0][0])
    edited.secret = "edited by a user"
    edited.save()
    updated = _cas_update(
        table=org_model._meta.db_table,
        pk_column="id",
        pk_type="uuid",
        column="secret",
        rows=updates,
    )
    assert updated == 1
    assert org_model.objects.get(pk=batch[0][0]).secret == "edited by a user"
    assert org_model.objects.get(pk=batch[1][0]).secret.startswith(CANARY)


def test_status_reports_what_wraps_what_without_key_material(models_, settings):
    org_model, platform_model = models_
    _seed(org_model, platform_model, orgs=2, per_org=1, platform=1)
    settings.AUTOGLUE_MASTER_KEYS = _ring(settings, old=True, new=True, active="new-master")
    out = io.StringIO()
    call_command("encrypt", "status", stdout=out)
    text = out.getvalue()
    assert "Active master key: new-master" in text
    assert "data keys wrapped by test-master: 3" in text
    assert "Data keys to re-wrap (rotate-master): 3" in text
    assert "core.testorgsecret.secret" in text
    for key in settings.AUTOGLUE_MASTER_KEYS.keys.values():
        assert format_entry("x", key)[2:] not in text


def test_create_master_prints_a_usable_entry(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    call_command("encrypt", "create-master", "--id", "k2", stdout=out, stderr=err)
    ring = parse_master_keys(out.getvalue().strip())
    assert ring.active_id == "k2" and len(ring.active_key) == 32
    target = tmp_path / "keys"
    call_command("encrypt", "create-master", "--file", str(target), stdout=io.StringIO())
    call_command("encrypt", "create-master", "--file", str(target), stdout=io.StringIO())
    assert target.stat().st_mode & 0o777 == 0o600
    first_id = target.read_text().split(":", 1)[0]
    assert len(parse_master_keys(target.read_text(), first_id).keys) == 2


# --- A dump of the database is useless without the master key ---------------------------------


def _candidate_keys(dump: str):
    """Every 32-byte value that any base64, base64url or hex token in the dump decodes to."""
    for token in set(re.findall(r"[A-Za-z0-9+/_=-]{40,}", dump)):
        for decode in (b64d, lambda t: bytes.fromhex(t)):
            try:
                raw = decode(token.rstrip("="))
            except ValueError:
                continue
            for start in range(0, max(0, len(raw) - 31)):
                yield raw[start : start + 32]


@pytest.mark.skipif(not shutil.which("pg_dump"), reason="pg_dump is not installed")
def test_logs_responses_and_a_pg_dump_hold_no_canary_and_no_key_that_decrypts_anything(
    models_, settings, caplog, client
):
    from apps.accounts.tests.factories import UserFactory

    caplog.set_level(logging.DEBUG)
    org_model, platform_model = models_
    (organization,) = _seed(org_model, platform_model, orgs=1, per_org=3, platform=1)
    row = org_model.objects.first()
    assert row.secret.startswith(CANARY)  # decrypted in this process, so logs had the chance

    # Responses and command output: the admin pages and `encrypt status`.
    client.force_login(UserFactory(is_admin=True))
    key_id = DataKey.objects.get(organization=organization).pk
    outputs = [
        client.get("/admin/core/datakey/").content.decode(),
        client.get(f"/admin/core/datakey/{key_id}/change/").content.decode(),
    ]
    status = io.StringIO()
    call_command("encrypt", "status", stdout=status)
    outputs.append(status.getvalue())

    db = connection.settings_dict
    dump = subprocess.run(  # noqa: S603 - fixed argv
        [
            shutil.which("pg_dump"),
            "--host",
            db["HOST"] or "127.0.0.1",
            "--port",
            str(db["PORT"] or 5432),
            "--username",
            db["USER"] or "postgres",
            "--no-password",
            db["NAME"],
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "ag1:" in dump  # the ciphertexts are in it
    master = settings.AUTOGLUE_MASTER_KEYS.active_key
    for sink in (dump, caplog.text, *outputs):
        assert CANARY not in sink
        for encoded in (format_entry("x", master)[2:], master.hex()):
            assert encoded not in sink

    # Try every 32-byte value in the dump as the master key and as the data key.
    key_row = DataKey.objects.get(organization=organization)
    wrapped = b64d(key_row.wrapped_key)
    data_key = data_key_for_decrypt(key_row.id)
    stored = org_model.objects.values_list("secret", flat=True).get(pk=row.pk)
    _, blob = parse_envelope(stored, what="x")
    context = SecretContext(
        model="core.testorgsecret", field="secret", pk=str(row.pk), organization_id=organization.pk
    )
    aad = context.aad(data_key)
    from apps.core.crypto.keys import _wrap_aad

    wrap_aad = _wrap_aad(key_row.id, organization.pk, key_row.version, key_row.master_key_id)
    tried = 0
    for candidate in _candidate_keys(dump):
        tried += 1
        for nonce_and_ct, associated in ((blob, aad), (wrapped, wrap_aad)):
            with pytest.raises(InvalidTag):
                AESGCM(candidate).decrypt(
                    nonce_and_ct[:NONCE_BYTES], nonce_and_ct[NONCE_BYTES:], associated
                )
    assert tried > 100
    # Positive control: the real keys do decrypt these very bytes.
    assert AESGCM(data_key.key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    assert AESGCM(master).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], wrap_aad)


@pytest.mark.slow
def test_master_key_rotation_killed_with_sigkill_completes_when_run_again(
    transactional_db, settings
):
    import os
    import signal
    import sys
    from pathlib import Path

    from apps.core.crypto.keys import data_key_create
    from apps.orgs.models import Organization

    organizations = Organization.objects.bulk_create(
        [Organization(name=f"org-{i}") for i in range(1500)]
    )
    for organization in organizations:
        data_key_create(organization_id=organization.pk, version=1)
    ring = _ring(settings, old=True, new=True, active="new-master")
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "autoglue.test_settings",
        "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}",
        "AUTOGLUE_MASTER_KEYS": ",".join(format_entry(k, v) for k, v in ring.keys.items()),
        "AUTOGLUE_ACTIVE_MASTER_KEY": "new-master",
    }
    argv = [sys.executable, "-u", "manage.py", "encrypt", "rotate-master", "--batch-size", "20"]
    root = Path(__file__).resolve().parents[3]
    proc = subprocess.Popen(  # noqa: S603 - fixed argv
        argv, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    for line in proc.stdout:
        if line.startswith("master-key: ") and int(line.split()[1].split("/")[0]) >= 100:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    rewrapped = DataKey.objects.filter(master_key_id="new-master").count()
    assert 100 <= rewrapped < 1500

    done = subprocess.run(  # noqa: S603 - fixed argv
        argv, cwd=root, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Done: {1500 - rewrapped}/{1500 - rewrapped} data keys re-wrapped." in done.stdout
    # Every wrapped key is valid under exactly the master key it records, the new one.
    settings.AUTOGLUE_MASTER_KEYS = _ring(settings, old=False, new=True, active="new-master")
    clear_key_cache()
    assert set(DataKey.objects.values_list("master_key_id", flat=True)) == {"new-master"}
    for key in DataKey.objects.all():
        assert data_key_for_decrypt(key.id).organization_id == key.organization_id

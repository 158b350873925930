"""Where master keys come from: production refuses to start without one, the embedded default
creates one under the data folder, and the Celery/command paths of a data key rotation."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

from apps.core.crypto.keys import clear_key_cache
from apps.core.crypto.master import format_entry, generate_master_key, parse_master_keys
from apps.core.models import DataKey
from apps.core.tests.crypto_support import CANARY, secret_models
from autoglue import embedded

ROOT = Path(__file__).resolve().parents[3]


def _settings_in_subprocess(**env_overrides) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AUTOGLUE_") and k != "DJANGO_SETTINGS_MODULE"
    }
    env.update(
        DJANGO_SETTINGS_MODULE="autoglue.settings",
        DJANGO_SECRET_KEY="config-test-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/autoglue",
        REDIS_URL="redis://127.0.0.1:6379/11",
        AUTOGLUE_ENV="production",
        DJANGO_ALLOWED_HOSTS="example.com",
    )
    env.update(env_overrides)
    code = "from django.conf import settings; print(repr(settings.AUTOGLUE_MASTER_KEYS))"
    return subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True
    )


def test_production_without_a_master_key_stops_at_boot_with_a_clear_message(tmp_path):
    done = _settings_in_subprocess(AUTOGLUE_DATA_DIR=str(tmp_path))
    assert done.returncode != 0
    assert "No master key is configured" in done.stderr
    assert not (tmp_path / "master_keys").exists()


def test_master_keys_come_from_the_environment_or_a_mounted_file(tmp_path):
    key = generate_master_key()
    entry = format_entry("prod-1", key)
    done = _settings_in_subprocess(AUTOGLUE_MASTER_KEYS=entry)
    assert done.returncode == 0, done.stderr
    assert "ids=['prod-1'], active_id='prod-1'" in done.stdout
    assert entry.split(":")[1] not in done.stdout + done.stderr

    mounted = tmp_path / "keys"
    mounted.write_text(f"# rotated 2026-11\n{entry}\n{format_entry('prod-2', key[::-1])}\n")
    done = _settings_in_subprocess(
        AUTOGLUE_MASTER_KEYS_FILE=str(mounted), AUTOGLUE_ACTIVE_MASTER_KEY="prod-2"
    )
    assert done.returncode == 0, done.stderr
    assert "ids=['prod-1', 'prod-2'], active_id='prod-2'" in done.stdout


def test_the_embedded_default_creates_one_private_key_file_and_keeps_it(tmp_path):
    path = embedded.ensure_master_keys(tmp_path)
    first = path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert embedded.ensure_master_keys(tmp_path) == path
    assert path.read_text() == first
    ring = parse_master_keys(first)
    assert ring.active_id.startswith("embedded-") and len(ring.active_key) == 32
    assert [p.name for p in tmp_path.iterdir()] == ["master_keys"]


def test_development_settings_use_the_key_file_under_the_data_folder(tmp_path):
    done = _settings_in_subprocess(AUTOGLUE_ENV="development", AUTOGLUE_DATA_DIR=str(tmp_path))
    assert done.returncode == 0, done.stderr
    ring = parse_master_keys((tmp_path / "master_keys").read_text())
    assert f"active_id='{ring.active_id}'" in done.stdout


@pytest.fixture
def models_(transactional_db):
    clear_key_cache()
    with secret_models(drop=True) as pair:
        yield pair
    clear_key_cache()


def test_the_background_rotation_task_re_encrypts_an_org_and_reports_progress(models_, org, caplog):
    from apps.core import tasks

    org_model, _ = models_
    for i in range(5):
        org_model.objects.create(organization=org, name=str(i), secret=f"{CANARY}-{i}")
    caplog.set_level("INFO")
    out = io.StringIO()
    # CELERY_TASK_ALWAYS_EAGER in tests: the queued task runs here.
    call_command("encrypt", "rotate-org", str(org.pk), "--background", stdout=out)
    assert "Queued data key rotation" in out.getvalue()
    assert sorted(DataKey.objects.values_list("version", flat=True)) == [1, 2]
    progress = [r for r in caplog.records if r.getMessage() == "data key rotation progress"]
    assert progress and progress[-1].done == progress[-1].total == 5
    clear_key_cache()
    assert {row.secret for row in org_model.objects.all()} == {f"{CANARY}-{i}" for i in range(5)}
    assert CANARY not in caplog.text
    assert tasks.data_keys_prune(str(org.pk)) == []  # too early: within the cache lifetime


def test_prune_command_deletes_versions_nothing_uses_once_processes_moved_on(
    models_, org, settings
):
    org_model, _ = models_
    org_model.objects.create(organization=org, secret=CANARY)
    call_command("encrypt", "rotate-org", str(org.pk), stdout=io.StringIO())
    settings.AUTOGLUE_DATA_KEY_CACHE_SECONDS = -10
    out = io.StringIO()
    call_command("encrypt", "prune", str(org.pk), stdout=out)
    assert "Deleted data key versions: 1" in out.getvalue()
    assert list(DataKey.objects.values_list("version", flat=True)) == [2]
    clear_key_cache()
    assert org_model.objects.get().secret == CANARY


def test_rotate_org_names_a_bad_organization_argument(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="not a UUID"):
        call_command("encrypt", "rotate-org", "acme", stdout=io.StringIO())

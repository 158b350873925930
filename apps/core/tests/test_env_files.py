"""`NAME_FILE` stands in for any variable the settings read (mounted secrets), read by the real
settings module in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps.core.crypto.master import format_entry, generate_master_key

ROOT = Path(__file__).resolve().parents[3]
PRINT_SETTINGS = (
    "import json; from django.conf import settings as s; print(json.dumps({"
    "'secret_key': s.SECRET_KEY, 'db_name': s.DATABASES['default']['NAME'], "
    "'rate_limit': s.RATE_LIMIT, 'cors': s.CORS_ALLOWED_ORIGINS, "
    "'max_failures': s.API_KEY_MAX_FAILURES, 'master_ids': sorted(s.AUTOGLUE_MASTER_KEYS.keys), "
    "'hosts': s.ALLOWED_HOSTS}))"
)
TESTED = (
    "DJANGO_SECRET_KEY",
    "DATABASE_URL",
    "RATE_LIMIT",
    "CORS_ALLOWED_ORIGINS",
    "API_KEY_MAX_FAILURES",
    "AUTOGLUE_MASTER_KEYS",
    "DJANGO_ALLOWED_HOSTS",
)


def _settings(tmp_path: Path, **env_overrides: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AUTOGLUE_")
        and k != "DJANGO_SETTINGS_MODULE"
        and k.removesuffix("_FILE") not in TESTED
    }
    env.update(
        DJANGO_SETTINGS_MODULE="autoglue.settings",
        AUTOGLUE_ENV="production",
        AUTOGLUE_DATA_DIR=str(tmp_path / "data"),
        REDIS_URL="redis://127.0.0.1:6379/11",
    )
    env.update(env_overrides)
    return subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-c", PRINT_SETTINGS], cwd=ROOT, env=env, capture_output=True, text=True
    )


def _secret(tmp_path: Path, name: str, content: str) -> str:
    path = tmp_path / name
    path.write_text(content)
    return str(path)


def test_every_variable_may_come_from_a_mounted_file(tmp_path):
    entry = format_entry("mounted-1", generate_master_key())
    done = _settings(
        tmp_path,
        DJANGO_SECRET_KEY_FILE=_secret(tmp_path, "sk", "from-a-file-0123456789-abcdefghijklmnop\n"),
        DATABASE_URL_FILE=_secret(tmp_path, "db", "postgres://u:p@db.internal:5432/fromfile\n"),
        RATE_LIMIT_FILE=_secret(tmp_path, "rl", "7/m\n"),
        CORS_ALLOWED_ORIGINS_FILE=_secret(tmp_path, "cors", "https://a.example,https://b.example"),
        API_KEY_MAX_FAILURES_FILE=_secret(tmp_path, "mf", "3\n"),
        AUTOGLUE_MASTER_KEYS_FILE=_secret(tmp_path, "mk", f"# rotated\n{entry}\n"),
        DJANGO_ALLOWED_HOSTS_FILE=_secret(tmp_path, "hosts", "autoglue.example.com\n"),
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "secret_key": "from-a-file-0123456789-abcdefghijklmnop",
        "db_name": "fromfile",
        "rate_limit": "7/m",
        "cors": ["https://a.example", "https://b.example"],
        "max_failures": 3,
        "master_ids": ["mounted-1"],
        "hosts": ["autoglue.example.com"],
    }


def test_a_variable_set_directly_wins_and_an_empty_one_falls_back_to_its_file(tmp_path):
    done = _settings(
        tmp_path,
        DJANGO_SECRET_KEY="direct-0123456789-abcdefghijklmnopqrstuvwxyz",
        DJANGO_SECRET_KEY_FILE=_secret(tmp_path, "sk", "from-the-file"),
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/autoglue",
        RATE_LIMIT="",
        RATE_LIMIT_FILE=_secret(tmp_path, "rl", "9/h"),
        AUTOGLUE_MASTER_KEYS=format_entry("direct", generate_master_key()),
        DJANGO_ALLOWED_HOSTS="example.com",
    )
    assert done.returncode == 0, done.stderr
    values = json.loads(done.stdout)
    assert values["secret_key"] == "direct-0123456789-abcdefghijklmnopqrstuvwxyz"
    assert values["rate_limit"] == "9/h"


def test_an_unreadable_file_stops_the_process_naming_the_variable(tmp_path):
    missing = tmp_path / "not-mounted"
    done = _settings(
        tmp_path,
        DJANGO_SECRET_KEY_FILE=str(missing),
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/autoglue",
        AUTOGLUE_MASTER_KEYS=format_entry("direct", generate_master_key()),
        DJANGO_ALLOWED_HOSTS="example.com",
    )
    assert done.returncode != 0
    assert f"DJANGO_SECRET_KEY_FILE: cannot read {missing}" in done.stderr


def test_manage_py_without_a_secret_key_prints_one_line_naming_the_variable(tmp_path):
    if (ROOT / ".env").exists():
        pytest.skip("a local .env (written by `make run`) provides the key in this checkout")
    env = {
        k: v
        for k, v in os.environ.items()
        if k.removesuffix("_FILE") != "DJANGO_SECRET_KEY" and k != "DJANGO_SETTINGS_MODULE"
    }
    env.update(AUTOGLUE_DATA_DIR=str(tmp_path / "data"))
    result = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, str(ROOT / "manage.py"), "check"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert "DJANGO_SECRET_KEY is not set" in result.stderr


def test_default_per_user_and_per_key_limits_are_never_stricter_than_the_originals_1000_a_minute(
    tmp_path,
):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RATE_LIMIT")}
    env.update(DJANGO_SETTINGS_MODULE="autoglue.settings", AUTOGLUE_DATA_DIR=str(tmp_path))
    env.setdefault("DJANGO_SECRET_KEY", "defaults-test-secret-key-0123456789-abcdefghijklmnop")
    snippet = (
        "from django.conf import settings as s; from apps.core.middleware import parse_rate; "
        "print(*(60 * n / w for n, w in map(parse_rate, "
        "(s.RATE_LIMIT, s.RATE_LIMIT_USER, s.RATE_LIMIT_KEY))))"
    )
    result = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-c", snippet], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert all(float(per_minute) >= 1000 for per_minute in result.stdout.split())

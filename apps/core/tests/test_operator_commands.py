"""What an operator types: the project's version command, the home page, and the start banner's
hints, which must run as printed."""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from apps.accounts.models import User
from apps.core.management.commands.runplatform import CREATE_ADMIN_ARGS, manage_command


def test_autoglue_version_prints_what_the_version_endpoint_serves(db):
    out = io.StringIO()
    call_command("autoglue_version", stdout=out)
    printed = json.loads(out.getvalue())
    assert printed == APIClient().get("/api/v1/version").json()
    assert printed["version"] and "go" in printed


def test_the_root_path_leads_to_the_console(db):
    response = APIClient().get("/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/"


@pytest.mark.django_db(transaction=True)
def test_the_banners_create_admin_hint_runs_as_printed(settings):
    printed = manage_command(*CREATE_ADMIN_ARGS)
    database = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/"
        f"{database['NAME']}",
    }
    done = subprocess.run(  # noqa: S603 - the banner's own command line
        shlex.split(printed),
        input="a-long-break-glass-password\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "created platform admin you@example.com" in done.stdout
    admin = User.objects.get(primary_email="you@example.com")
    assert admin.is_admin and admin.check_password("a-long-break-glass-password")

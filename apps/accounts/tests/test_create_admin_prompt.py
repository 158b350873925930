"""`create_admin`: run by hand in a terminal, `--password-stdin` asks for the password (twice, no
echo) instead of waiting silently for a line; `--if-no-admin` only ever creates the first admin."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from apps.accounts.models import User


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_in_a_terminal_the_password_is_prompted_for_twice(db, monkeypatch):
    answers = iter(["a-long-break-glass-password", "a-long-break-glass-password"])
    prompts: list[str] = []
    monkeypatch.setattr("sys.stdin", _Terminal())
    monkeypatch.setattr("getpass.getpass", lambda prompt: prompts.append(prompt) or next(answers))

    call_command(
        "create_admin", "--email", "ops@example.com", "--password-stdin", stdout=io.StringIO()
    )

    assert prompts == ["Password: ", "Password (again): "]
    assert User.objects.get(primary_email="ops@example.com").check_password(
        "a-long-break-glass-password"
    )


def test_in_a_terminal_two_different_passwords_are_refused(db, monkeypatch):
    answers = iter(["a-long-break-glass-password", "another-long-password"])
    monkeypatch.setattr("sys.stdin", _Terminal())
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(answers))

    with pytest.raises(CommandError, match="do not match"):
        call_command("create_admin", "--email", "ops@example.com", "--password-stdin")
    assert not User.objects.filter(primary_email="ops@example.com").exists()


def test_if_no_admin_creates_the_first_admin_only(db, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-break-glass-password\n"))
    out = io.StringIO()
    call_command(
        "create_admin",
        "--email",
        "first@example.com",
        "--password-stdin",
        "--if-no-admin",
        stdout=out,
    )
    monkeypatch.setattr("sys.stdin", io.StringIO("another-long-password\n"))
    call_command(
        "create_admin",
        "--email",
        "second@example.com",
        "--password-stdin",
        "--if-no-admin",
        stdout=out,
    )

    assert "a platform admin exists; nothing to do" in out.getvalue()
    assert list(User.objects.filter(is_admin=True).values_list("primary_email", flat=True)) == [
        "first@example.com"
    ]
    assert User.objects.get(is_admin=True).check_password("a-long-break-glass-password")

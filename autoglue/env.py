"""The environment as the settings read it: every variable may be given as `NAME_FILE`.

`NAME_FILE=/run/secrets/x` stands in for `NAME` when `NAME` is unset or empty (mounted
Kubernetes/Docker secrets). A non-empty `NAME` wins over `NAME_FILE`, the same rule for every
variable. The file's trailing line breaks are dropped; an unreadable file stops the process at
boot with a message naming the variable and the path, never the content.

A local `.env` (development) only fills names the process environment lacks, and a name whose
`NAME_FILE` is set counts as present, so a mounted secret beats a stale `.env` line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, MutableMapping
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured


class FileBackedEnviron(MutableMapping[str, str]):
    """`os.environ`, where reading `NAME` falls back to the file named by `NAME_FILE`."""

    def __getitem__(self, name: str) -> str:
        value = os.environ.get(name)
        if value:
            return value
        path = os.environ.get(f"{name}_FILE")
        if path:
            try:
                return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or type(exc).__name__
                raise ImproperlyConfigured(f"{name}_FILE: cannot read {path} ({reason}).") from None
        return os.environ[name]

    def __setitem__(self, name: str, value: str) -> None:
        os.environ[name] = value

    def __delitem__(self, name: str) -> None:
        del os.environ[name]

    def __iter__(self) -> Iterator[str]:
        return iter(os.environ)

    def __len__(self) -> int:
        return len(os.environ)


class Env(environ.Env):
    """django-environ's reader over `FileBackedEnviron`: `env.str("X")`, `env.db("X")`, ... and
    `Env.read_env()` all honour `X_FILE`."""

    ENVIRON = FileBackedEnviron()

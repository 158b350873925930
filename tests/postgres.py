"""A PostgreSQL server of the test's own (initdb + pg_ctl on a free loopback port, in a temporary
folder), for fault tests that stop or restart the database: the shared server on :5432 is never
touched. Requires the server binaries of /usr/lib/postgresql/15 (Debian's postgresql-15)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psycopg

from tests.live import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class OwnPostgres:
    """One throwaway server. `start(**settings)` passes server settings (`-c name=value`) for
    that run only, so a restart can drop them."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="autoglue-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        # initdb refuses to run as root; the server then runs as the postgres account.
        self._user = "postgres" if os.geteuid() == 0 else None
        if self._user:
            entry = pwd.getpwnam(self._user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust")

    def _run(self, *argv: str) -> None:
        subprocess.run(  # noqa: S603 - the server's own binaries
            argv, check=True, capture_output=True, user=self._user, cwd=self.dir, timeout=120
        )

    def start(self, **settings: str) -> None:
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.dir}",
            "-c fsync=off",
            *(f"-c {name}={value}" for name, value in settings.items()),
        ]
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "server.log"),
            "-o",
            " ".join(options),
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, dbname: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    def connect(self, dbname: str) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url(dbname), autocommit=True)

    def copy_database(self, source: dict[str, Any], dbname: str) -> None:
        """A copy of another server's database (schema and rows), e.g. the test database with
        what the test has committed so far: faster than migrating a new one."""
        with self.connect("postgres") as conn:
            conn.execute(f'CREATE DATABASE "{dbname}"')
        dump = subprocess.run(  # noqa: S603 - the server's own binaries
            [
                str(PG_BIN / "pg_dump"),
                "--no-owner",
                "-h",
                source["HOST"],
                "-p",
                str(source["PORT"]),
                "-U",
                source["USER"],
                source["NAME"],
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(  # noqa: S603 - the server's own binaries
            [str(PG_BIN / "psql"), "-q", "-v", "ON_ERROR_STOP=1", self.url(dbname)],
            input=dump.stdout,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

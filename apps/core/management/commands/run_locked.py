"""`manage.py run_locked NAME -- COMMAND...`: run COMMAND while holding a PostgreSQL advisory lock
named NAME, so two copies never run at once.

docker/setup.sh runs itself this way: a second migration Job (a re-run `helm upgrade` while the
first Job still migrates, or two installs of one database) waits for the first instead of
migrating alongside it. The lock is a session lock: PostgreSQL releases it when this process's
connection ends, even if the process is killed.
"""

import subprocess
import zlib
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connection


def advisory_key(name: str) -> int:
    """The lock's 64-bit key: a fixed prefix (Autoglue's own) and a checksum of its name."""
    return (0x4147 << 32) | zlib.crc32(name.encode())


class Command(BaseCommand):
    help = "Run a command while holding a PostgreSQL advisory lock, one copy at a time."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("name", help="the lock's name, e.g. setup")
        parser.add_argument("argv", nargs="+", help="the command, after --")

    def handle(self, *args: Any, **options: Any) -> None:
        key = advisory_key(options["name"])
        argv = options["argv"]
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            if not cursor.fetchone()[0]:
                self.stderr.write(f"waiting for the {options['name']} lock (another copy runs)")
                cursor.execute("SELECT pg_advisory_lock(%s)", [key])
            try:
                # The operator's own command line (docker/setup.sh), never request input.
                returncode = subprocess.run(argv, check=False).returncode  # noqa: S603
            finally:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        if returncode:
            raise CommandError(f"{argv[0]} exited with {returncode}", returncode=returncode)

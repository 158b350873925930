"""Backups: pg_dump -> zlib -> AES-256-GCM chunks -> S3 multipart upload, and the way back.

Nothing holds more than a part (BACKUP_PART_SIZE_MB) and a chunk or two in memory, and nothing
is written to disk: pg_dump's output is read from a pipe and uploaded as it comes, and a restore
streams the object through the same stages into pg_restore's stdin. A restore reads the object
twice: once to verify every chunk's tag and the SHA-256 before anything is written, then again,
pinned to the same object version by its ETag, into pg_restore, which runs in a single
transaction so that even a failure in the second pass leaves the target untouched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import secrets
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import IO, Any

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from django.utils import timezone

from apps.jobs.runner import JobCanceled
from apps.maintenance import archive, storage
from apps.maintenance.keys import BackupKeyError, backup_keys
from apps.maintenance.models import Backup
from apps.maintenance.postgres import PostgresToolError, Target, find_tool

logger = logging.getLogger(__name__)

READ_SIZE = 1024 * 1024
PROGRESS_EVERY_BYTES = 64 * 1024 * 1024
SUFFIX = ".agbk"
MANIFEST_SUFFIX = ".json"

Progress = Callable[[str], None]


class BackupError(Exception):
    """A backup or restore could not be done; the message is safe to show and log."""


def _noop(_: str) -> None:
    return None


class _StderrTail(threading.Thread):
    """Drains a child's stderr (so it never blocks on a full pipe), keeping the last lines."""

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(daemon=True)
        self.stream, self.tail = stream, b""

    def run(self) -> None:
        for line in iter(self.stream.readline, b""):
            self.tail = (self.tail + line)[-2000:]

    def text(self) -> str:
        self.join(timeout=5)
        return self.tail.decode("utf-8", "replace").strip()


def _s3_failure(exc: Exception) -> str:
    """What went wrong with the bucket, without S3's free-text message (it may name the
    installation's principal): the operation and S3's error code."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code") or "error"
        return f"S3 {exc.operation_name} failed: {code}"
    return f"S3 request failed ({type(exc).__name__})"


@contextlib.contextmanager
def _bucket_errors(context: str = "") -> Iterator[None]:
    """Turn the bucket's errors (a missing setting, a refused or broken request) into a
    BackupError that commands and jobs can show as is."""
    prefix = f"{context}: " if context else ""
    try:
        yield
    except storage.StorageError as exc:
        raise BackupError(f"{prefix}{exc}") from None
    except (ClientError, BotoCoreError) as exc:
        raise BackupError(f"{prefix}{_s3_failure(exc)}") from None


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"


def backup_object_key(*, database: str, at: datetime) -> str:
    """`<prefix><yyyy>/<mm>/<dd>/<database>-<timestamp>-<random>.agbk`."""
    safe_db = "".join(c if c.isalnum() or c in "-_" else "_" for c in database)[:64] or "db"
    return (
        f"{settings.BACKUP_S3_PREFIX}{at:%Y/%m/%d}/"
        f"{safe_db}-{at:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}{SUFFIX}"
    )


def backup_create(
    *,
    target: Target | None = None,
    progress: Progress = _noop,
    check: Callable[[], None] = lambda: None,
    job_id: Any = None,
) -> Backup:
    """Dump the database (the platform's own by default) into the backup bucket, encrypted
    with the active backup key, and record it. Raises BackupError; the record then says
    `failed` and no partial object is left behind."""
    try:
        ring = backup_keys()
        bucket = storage.bucket()
    except (BackupKeyError, storage.StorageError) as exc:
        raise BackupError(str(exc)) from None
    target = target or Target.from_django()
    try:
        major = target.server_major()
        pg_dump, tool_major = find_tool("pg_dump", at_least=major, prefer=major)
    except PostgresToolError as exc:
        raise BackupError(str(exc)) from None
    now = timezone.now()
    backup = Backup.objects.create(
        bucket=bucket,
        object_key=backup_object_key(database=target.name, at=now),
        key_id=ring.active_id,
        database=target.name,
        server_version=str(major),
        job_id=job_id,
    )
    started = time.monotonic()
    progress(f"backing up database {target.name} (PostgreSQL {major}) with {pg_dump}")
    try:
        size, digest, dump_bytes = _upload_dump(
            target=target,
            pg_dump=str(pg_dump),
            header={
                "created_at": now.isoformat(),
                "database": target.name,
                "server_major": major,
                "pg_dump_major": tool_major,
                "compression": "zlib",
                "dump_format": "pg_dump-custom",
            },
            key=ring.active_key,
            key_id=ring.active_id,
            bucket=bucket,
            object_key=backup.object_key,
            progress=progress,
            check=check,
        )
    except Exception as exc:
        if isinstance(exc, BackupError):
            message = str(exc)
        elif isinstance(exc, JobCanceled):
            message = "canceled"
        elif isinstance(exc, ClientError | BotoCoreError):
            message = f"backup failed ({_s3_failure(exc)})"
        else:
            message = f"backup failed ({type(exc).__name__})"
            logger.exception("backup %s failed", backup.pk)
        Backup.objects.filter(pk=backup.pk).update(
            status=Backup.Status.FAILED,
            error=message,
            finished_at=timezone.now(),
            duration_seconds=round(time.monotonic() - started, 3),
        )
        if isinstance(exc, BackupError | JobCanceled):
            raise
        raise BackupError(message) from exc
    backup.status = Backup.Status.SUCCEEDED
    backup.size_bytes, backup.sha256, backup.dump_bytes = size, digest, dump_bytes
    backup.finished_at = timezone.now()
    backup.duration_seconds = round(time.monotonic() - started, 3)
    backup.save(
        update_fields=[
            "status",
            "size_bytes",
            "sha256",
            "dump_bytes",
            "finished_at",
            "duration_seconds",
        ]
    )
    progress(
        f"stored {backup.object_key}: {_mib(size)} from a {_mib(dump_bytes)} dump "
        f"in {backup.duration_seconds} s, sha256 {digest}"
    )
    return backup


def _upload_dump(
    *,
    target: Target,
    pg_dump: str,
    header: dict[str, Any],
    key: bytes,
    key_id: str,
    bucket: str,
    object_key: str,
    progress: Progress,
    check: Callable[[], None],
) -> tuple[int, str, int]:
    """Run pg_dump into the bucket; (object size, SHA-256 hex, dump size)."""
    client = storage.s3_client()
    writer = storage.MultipartWriter(
        client, bucket, object_key, part_size=settings.BACKUP_PART_SIZE_MB * storage.MIB
    )
    sealer = archive.Sealer(key=key, key_id=key_id, header=header)
    compressor = zlib.compressobj(settings.BACKUP_COMPRESSION_LEVEL)
    digest = hashlib.sha256()

    def put(data: bytes) -> None:
        if data:
            digest.update(data)
            writer.write(data)

    proc = subprocess.Popen(  # noqa: S603 - fixed binary, no shell; connection string is one arg
        [pg_dump, "--format=custom", "--compress=0", "--no-password", "--dbname", target.conninfo],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=target.env(),
    )
    stderr = _StderrTail(proc.stderr)  # type: ignore[arg-type]
    stderr.start()
    completed = False
    try:
        next_report, dump_bytes = PROGRESS_EVERY_BYTES, 0
        assert proc.stdout is not None  # noqa: S101 - stdout=PIPE above
        while data := proc.stdout.read(READ_SIZE):
            dump_bytes += len(data)
            put(sealer.write(compressor.compress(data)))
            if dump_bytes >= next_report:
                next_report += PROGRESS_EVERY_BYTES
                progress(f"dumped {_mib(dump_bytes)}, uploaded {_mib(writer.size)}")
                check()
        put(sealer.write(compressor.flush()))
        put(sealer.close())
        if proc.wait() != 0:
            raise BackupError(f"pg_dump failed (exit {proc.returncode}): {stderr.text()[-500:]}")
        writer.complete()
        sha = digest.hexdigest()
        manifest = {
            "object_key": object_key,
            "size": writer.size,
            "sha256": sha,
            "key_id": key_id,
            "created_at": header["created_at"],
            "database": header["database"],
            "server_major": header["server_major"],
        }
        client.put_object(
            Bucket=bucket,
            Key=object_key + MANIFEST_SUFFIX,
            Body=json.dumps(manifest, sort_keys=True).encode("utf-8"),
            ContentType="application/json",
        )
        completed = True
        return writer.size, sha, dump_bytes
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stderr.text()
        if not completed:
            writer.abort()


# --- reading back -------------------------------------------------------------------------------


@dataclass
class BackupInfo:
    """A backup as found in the bucket (manifest) and, if it is still there, in the table."""

    object_key: str
    size: int
    sha256: str = ""
    key_id: str = ""
    created_at: str = ""
    database: str = ""
    last_modified: datetime | None = None
    record: Backup | None = field(default=None, repr=False)

    @property
    def complete(self) -> bool:
        return bool(self.sha256)


def backups_list() -> list[BackupInfo]:
    """Every backup object under the prefix, newest first, from the bucket (the table may be
    lost with the database it describes); objects without a manifest never completed."""
    with _bucket_errors("cannot list the backups"):
        return _backups_list()


def _backups_list() -> list[BackupInfo]:
    client, bucket = storage.s3_client(), storage.bucket()
    objects: dict[str, dict[str, Any]] = {}
    manifests: set[str] = set()
    for item in storage.list_objects(client, bucket, settings.BACKUP_S3_PREFIX):
        if item["Key"].endswith(SUFFIX):
            objects[item["Key"]] = item
        elif item["Key"].endswith(SUFFIX + MANIFEST_SUFFIX):
            manifests.add(item["Key"][: -len(MANIFEST_SUFFIX)])
    records = {b.object_key: b for b in Backup.objects.filter(object_key__in=list(objects))}
    found = []
    for key, item in objects.items():
        info = BackupInfo(
            object_key=key,
            size=int(item["Size"]),
            last_modified=item["LastModified"],
            record=records.get(key),
        )
        if key in manifests:
            manifest = _manifest(client, bucket, key)
            info.sha256 = str(manifest.get("sha256", ""))
            info.key_id = str(manifest.get("key_id", ""))
            info.created_at = str(manifest.get("created_at", ""))
            info.database = str(manifest.get("database", ""))
        found.append(info)
    # The manifest's timestamp breaks ties: S3 lists modification times to the second.
    found.sort(key=lambda i: (i.last_modified or timezone.now(), i.created_at), reverse=True)
    return found


def _manifest(client: Any, bucket: str, object_key: str) -> dict[str, Any]:
    try:
        body = client.get_object(Bucket=bucket, Key=object_key + MANIFEST_SUFFIX)["Body"]
        data = json.loads(body.read(64 * 1024))
    except Exception:  # noqa: BLE001 - a missing or unreadable manifest means "not complete"
        return {}
    return data if isinstance(data, dict) else {}


def _plain_stream(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The decompressed dump, in pieces of at most READ_SIZE (a small chunk can inflate a
    lot; the output is bounded, not the ratio)."""
    decompressor = zlib.decompressobj()
    try:
        for chunk in chunks:
            data = chunk
            while data:
                out = decompressor.decompress(data, READ_SIZE)
                if out:
                    yield out
                data = decompressor.unconsumed_tail
        tail = decompressor.flush()
    except zlib.error:
        raise archive.ArchiveError("the decrypted backup does not decompress") from None
    if tail:
        yield tail
    if not decompressor.eof or decompressor.unused_data:
        raise archive.ArchiveError("the decrypted backup's compressed stream is incomplete")


@dataclass(frozen=True)
class Verified:
    object_key: str
    etag: str
    size: int
    sha256: str
    dump_bytes: int
    header: dict[str, Any]
    # What a restore did besides pg_restore (lines for the operator).
    notes: tuple[str, ...] = ()


def backup_verify(*, object_key: str, progress: Progress = _noop) -> Verified:
    """Read the whole object: every chunk's tag, the compressed stream's end and the SHA-256
    against the manifest (and the record, if there is one). Raises BackupError."""
    with _bucket_errors(object_key):
        return _verify(object_key=object_key, progress=progress)


def _verify(*, object_key: str, progress: Progress) -> Verified:
    client, bucket = storage.s3_client(), storage.bucket()
    expected = _manifest(client, bucket, object_key).get("sha256", "")
    record = Backup.objects.filter(object_key=object_key).first()
    if record and record.sha256 and expected and record.sha256 != expected:
        raise BackupError("the manifest's SHA-256 differs from the recorded one")
    expected = expected or (record.sha256 if record else "")
    if not expected:
        raise BackupError(f"{object_key} has no manifest: the backup never completed")
    reader = _open(client, bucket, object_key)
    try:
        header, chunks = archive.open_archive(reader.read, _key_lookup())
        dump_bytes, next_report = 0, PROGRESS_EVERY_BYTES
        for piece in _plain_stream(chunks):
            dump_bytes += len(piece)
            if reader.size >= next_report:
                next_report += PROGRESS_EVERY_BYTES
                progress(f"verified {_mib(reader.size)} of {_mib(reader.length)}")
        reader.drain()
    except (archive.ArchiveError, BackupKeyError) as exc:
        raise BackupError(f"{object_key}: {exc}") from None
    finally:
        reader.close()
    sha = reader.hash.hexdigest()
    if sha != expected:
        raise BackupError(f"{object_key}: SHA-256 {sha} does not match the recorded {expected}")
    return Verified(object_key, reader.etag, reader.size, sha, dump_bytes, header)


def _open(client: Any, bucket: str, object_key: str, etag: str = "") -> storage.ObjectReader:
    try:
        return storage.ObjectReader(client, bucket, object_key, etag=etag)
    except client.exceptions.NoSuchKey:
        raise BackupError(f"{object_key} is not in the bucket") from None
    except Exception as exc:  # noqa: BLE001 - e.g. the object changed since it was verified
        raise BackupError(f"{object_key} cannot be read ({type(exc).__name__})") from None


def _key_lookup() -> Callable[[str], bytes]:
    try:
        ring = backup_keys()
    except BackupKeyError as exc:
        raise BackupError(str(exc)) from None
    return ring.get


def backup_restore(
    *,
    object_key: str,
    target: Target,
    allow_nonempty: bool = False,
    progress: Progress = _noop,
) -> Verified:
    """Restore a backup into `target`: refuse a non-empty database unless `allow_nonempty`
    (then the backup's objects are dropped and recreated; others stay), verify the whole
    object, then stream it into pg_restore in one transaction. Raises BackupError; on any
    error the target is unchanged."""
    try:
        tables = target.user_tables()
        target_major = target.server_major()
    except Exception as exc:  # noqa: BLE001 - connection problems come in several types
        raise BackupError(f"cannot reach the target database {target.name!r}") from exc
    if tables and not allow_nonempty:
        raise BackupError(
            f"the target database {target.name!r} is not empty ({tables} relations); "
            "restore into an empty database, or pass --allow-nonempty to replace its contents"
        )
    progress(f"verifying {object_key}")
    verified = backup_verify(object_key=object_key, progress=progress)
    dump_major = int(verified.header.get("pg_dump_major") or 0)
    try:
        pg_restore, _ = find_tool("pg_restore", at_least=dump_major, prefer=target_major)
    except PostgresToolError as exc:
        raise BackupError(str(exc)) from None
    progress(f"verified ({_mib(verified.size)}, sha256 {verified.sha256}); restoring")
    args = [
        str(pg_restore),
        "--no-password",
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        "--single-transaction",
        "--dbname",
        target.conninfo,
    ]
    if allow_nonempty:
        args[1:1] = ["--clean", "--if-exists"]
    with _bucket_errors(f"restore aborted, nothing written: {object_key}"):
        _stream_into(args, verified, target, progress)
    progress(f"restored {object_key} into {target.name}")
    notes = _settle_own_record(target=target, verified=verified)
    for note in notes:
        progress(note)
    return replace(verified, notes=tuple(notes))


# The backup's own record and job run, as its dump holds them (`running`: both are committed
# before pg_dump starts), are marked as they ended. The object was just verified whole, so the
# backup did succeed; its job's last step was the upload. The same schema as the dump's: a
# backup from a release without these tables or columns is left as it is, and said so.
_SETTLE_BACKUP = (
    "UPDATE maintenance_backup SET status = 'succeeded', size_bytes = %(size)s, "
    "sha256 = %(sha256)s, dump_bytes = %(dump_bytes)s, error = '', "
    "finished_at = COALESCE(finished_at, now()) "
    "WHERE object_key = %(key)s AND status = 'running' RETURNING job_id"
)
_SETTLE_JOB = (
    "UPDATE jobs_jobrun SET status = 'succeeded', error = '', finished_at = now(), "
    "heartbeat_at = now(), updated_at = now() WHERE id = %(job)s AND status = 'running'"
)
_SETTLE_JOB_NOTE = (
    "INSERT INTO jobs_joblog (job_id, organization_id, subject_type, subject_id, stream, chunk, "
    "created_at) VALUES (%(job)s, NULL, '', NULL, 'system', %(note)s, now())"
)


def _settle_own_record(*, target: Target, verified: Verified) -> list[str]:
    """Mark, in the restored database, the backup it was restored from (and that backup's job
    run) as succeeded: its dump was taken while both were still `running`. Returns what was
    done, for the operator."""
    params: dict[str, Any] = {
        "key": verified.object_key,
        "size": verified.size,
        "sha256": verified.sha256,
        "dump_bytes": verified.dump_bytes,
        "note": "backup stored; this run was in progress when its own dump was taken, and was "
        "marked succeeded when the database was restored from this backup\n",
    }
    notes: list[str] = []
    try:
        with target.connect(connect_timeout=10) as conn, conn.transaction():
            row = conn.execute(_SETTLE_BACKUP, params).fetchone()
            if row is None:
                return notes
            notes.append(
                f"marked backup {verified.object_key} succeeded in {target.name} "
                "(its dump was taken while it ran)"
            )
            if row[0] is not None:
                params["job"] = row[0]
                if conn.execute(_SETTLE_JOB, params).rowcount:
                    conn.execute(_SETTLE_JOB_NOTE, params)
                    notes.append(f"marked its job run {row[0]} succeeded")
    except Exception as exc:  # noqa: BLE001 - the restore itself succeeded; say what was not done
        logger.warning("restored backup's own record not marked", exc_info=True)
        notes = [
            f"left the backup's own record in {target.name} as the dump holds it "
            f"({type(exc).__name__}); it shows as running until edited"
        ]
    return notes


def _stream_into(args: list[str], verified: Verified, target: Target, progress: Progress) -> None:
    client, bucket = storage.s3_client(), storage.bucket()
    reader = _open(client, bucket, verified.object_key, verified.etag)
    proc = subprocess.Popen(  # noqa: S603 - fixed binary, no shell; connection string is one arg
        args,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=target.env(),
    )
    stderr = _StderrTail(proc.stderr)  # type: ignore[arg-type]
    stderr.start()
    assert proc.stdin is not None  # noqa: S101 - stdin=PIPE above
    try:
        _, chunks = archive.open_archive(reader.read, _key_lookup())
        for piece in _plain_stream(chunks):
            proc.stdin.write(piece)
        reader.drain()
        if reader.hash.hexdigest() != verified.sha256:
            raise BackupError("the object changed between verification and restore")
        proc.stdin.close()
        if proc.wait() != 0:
            raise BackupError(f"pg_restore failed (exit {proc.returncode}): {stderr.text()[-500:]}")
    except (archive.ArchiveError, BackupKeyError, BrokenPipeError) as exc:
        # Killing pg_restore before its input ends rolls its single transaction back.
        proc.kill()
        proc.wait()
        detail = stderr.text()[-500:] if isinstance(exc, BrokenPipeError) else str(exc)
        raise BackupError(f"restore aborted, nothing written: {detail}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.close()


# --- retention --------------------------------------------------------------------------------


def backup_prune(*, now: datetime | None = None, progress: Progress = _noop) -> dict[str, int]:
    """Delete backups older than BACKUP_RETENTION_DAYS, objects and records, always keeping
    the newest BACKUP_KEEP_MIN complete ones. Works from the bucket listing, so objects the
    table does not know (made after the snapshot a restore brought back) age out too."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.BACKUP_RETENTION_DAYS)
    # A backup whose worker died never finishes its record; past its time budget it is over.
    Backup.objects.filter(
        status=Backup.Status.RUNNING,
        started_at__lt=now - timedelta(seconds=settings.BACKUP_TIMEOUT_SECONDS + 3600),
    ).update(status=Backup.Status.FAILED, error="abandoned (its worker stopped)", finished_at=now)
    backups = backups_list()
    complete = [b for b in backups if b.complete]
    keep = {b.object_key for b in complete[: max(settings.BACKUP_KEEP_MIN, 0)]}
    doomed = [
        b.object_key
        for b in backups
        if b.object_key not in keep and b.last_modified is not None and b.last_modified < cutoff
    ]
    with _bucket_errors("retention"):
        client, bucket = storage.s3_client(), storage.bucket()
        for start in range(0, len(doomed), 500):
            batch = doomed[start : start + 500]
            objects = [{"Key": k} for k in batch] + [{"Key": k + MANIFEST_SUFFIX} for k in batch]
            client.delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})
    deleted_records, _ = Backup.objects.filter(object_key__in=doomed).delete()
    # Failed attempts left no object (their upload was aborted); their records age out too.
    failed_records, _ = (
        Backup.objects.filter(started_at__lt=cutoff)
        .exclude(status=Backup.Status.SUCCEEDED)
        .exclude(object_key__in=keep)
        .delete()
    )
    summary = {
        "objects_deleted": len(doomed),
        "records_deleted": deleted_records + failed_records,
        "kept": len(backups) - len(doomed),
    }
    progress(
        f"retention ({settings.BACKUP_RETENTION_DAYS} days, keep at least "
        f"{settings.BACKUP_KEEP_MIN}): deleted {len(doomed)} backup(s), kept {summary['kept']}"
    )
    return summary

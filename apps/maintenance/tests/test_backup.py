"""Backups of a real PostgreSQL database into a moto S3 server over HTTP, and restores of them.

The source is a throwaway database with a few tables and a canary string; restores go into a
fresh empty database and are compared table by table.
"""

from __future__ import annotations

import hashlib
import struct
import zlib

import pytest
from django.core.management import call_command

from apps.jobs.models import JobRun
from apps.maintenance import archive, services
from apps.maintenance.keys import backup_keys
from apps.maintenance.models import Backup
from apps.maintenance.tests.conftest import (
    BUCKET,
    CANARY,
    KEY_ID,
    fill_source,
    relation_count,
    table_checksums,
)

HEADER_END = len(archive.MAGIC) + 1 + 4


@pytest.fixture
def source(databases):
    target = databases.create("src")
    fill_source(target)
    return target


@pytest.fixture
def backed_up(backup_bucket, source):
    return services.backup_create(target=source)


def _object(client, key: str) -> bytes:
    return client.get_object(Bucket=BUCKET, Key=key)["Body"].read()


def _records(blob: bytes) -> tuple[int, list[tuple[int, int]]]:
    """Where the header ends and each chunk record (start, end) lies."""
    (header_len,) = struct.unpack(">I", blob[HEADER_END - 4 : HEADER_END])
    offset = HEADER_END + header_len
    start, records = offset, []
    while offset < len(blob):
        (length,) = struct.unpack(">I", blob[offset : offset + 4])
        records.append((offset, offset + 4 + length))
        offset += 4 + length
    return start, records


def _plaintext(blob: bytes) -> bytes:
    reader = iter([blob])
    buffer = bytearray(next(reader))

    def read(n: int) -> bytes:
        data = bytes(buffer[:n])
        del buffer[:n]
        return data

    _, chunks = archive.open_archive(read, backup_keys().get)
    return zlib.decompress(b"".join(chunks))


def test_backup_is_recorded_with_the_objects_size_and_checksum(backup_bucket, backed_up):
    blob = _object(backup_bucket, backed_up.object_key)
    backed_up.refresh_from_db()
    assert backed_up.status == Backup.Status.SUCCEEDED
    assert backed_up.size_bytes == len(blob)
    assert backed_up.sha256 == hashlib.sha256(blob).hexdigest()
    assert backed_up.key_id == KEY_ID
    assert backed_up.dump_bytes > 7 * 1024 * 1024
    assert backed_up.duration_seconds is not None
    # Several multipart parts and many chunks: the streaming path was really exercised.
    assert len(blob) > 5 * 1024 * 1024
    assert len(_records(blob)[1]) > 5


def test_stored_object_holds_no_plaintext_from_the_database(backup_bucket, backed_up):
    blob = _object(backup_bucket, backed_up.object_key)
    assert CANARY.encode() not in blob
    assert b"customers" not in blob
    # The same object, decrypted with the backup key, does hold it: the check above can fail.
    assert CANARY.encode() in _plaintext(blob)


def test_restore_into_an_empty_database_gives_identical_tables(backed_up, source, databases):
    empty = databases.create("dst")
    services.backup_restore(object_key=backed_up.object_key, target=empty)
    expected = table_checksums(source)
    assert set(expected) >= {"customers", "orders", "blobs", "seq:customers_id_seq"}
    assert table_checksums(empty) == expected


def test_restore_refuses_a_database_that_is_not_empty(backed_up, source, databases):
    busy = databases.create("busy")
    with busy.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE precious (id int)")
    with pytest.raises(services.BackupError, match="not empty"):
        services.backup_restore(object_key=backed_up.object_key, target=busy)
    assert table_checksums(busy) == {"precious": "0:d41d8cd98f00b204e9800998ecf8427e"}


def test_restore_into_a_nonempty_database_when_told_replaces_its_contents(
    backed_up, source, databases
):
    busy = databases.create("busy")
    with busy.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id int)")
    services.backup_restore(object_key=backed_up.object_key, target=busy, allow_nonempty=True)
    assert table_checksums(busy) == table_checksums(source)


def _replace(client, key: str, blob: bytes) -> None:
    client.put_object(Bucket=BUCKET, Key=key, Body=blob)


@pytest.mark.parametrize("where", ["header", "first chunk", "middle chunk", "last chunk"])
def test_restore_refuses_a_corrupted_object_and_writes_nothing(
    backup_bucket, backed_up, databases, where
):
    blob = bytearray(_object(backup_bucket, backed_up.object_key))
    start, records = _records(bytes(blob))
    offset = {
        "header": start - 3,
        "first chunk": records[0][0] + 100,
        "middle chunk": records[len(records) // 2][0] + 5000,
        "last chunk": records[-1][1] - 1,
    }[where]
    blob[offset] ^= 0x01
    _replace(backup_bucket, backed_up.object_key, bytes(blob))
    empty = databases.create("dst")
    with pytest.raises(services.BackupError):
        services.backup_restore(object_key=backed_up.object_key, target=empty)
    assert relation_count(empty) == 0


def test_restore_refuses_a_corrupted_object_even_when_its_checksum_is_updated(
    backup_bucket, backed_up, databases
):
    """The authentication tag, not only the SHA-256, is checked before anything is written."""
    blob = bytearray(_object(backup_bucket, backed_up.object_key))
    _, records = _records(bytes(blob))
    blob[records[1][0] + 50] ^= 0xFF
    _replace(backup_bucket, backed_up.object_key, bytes(blob))
    Backup.objects.filter(pk=backed_up.pk).update(sha256=hashlib.sha256(blob).hexdigest())
    backup_bucket.put_object(
        Bucket=BUCKET,
        Key=backed_up.object_key + ".json",
        Body=b'{"sha256": "%s"}' % hashlib.sha256(blob).hexdigest().encode(),
    )
    empty = databases.create("dst")
    with pytest.raises(services.BackupError, match="failed authentication"):
        services.backup_restore(object_key=backed_up.object_key, target=empty)
    assert relation_count(empty) == 0


@pytest.mark.parametrize("cut", ["last chunk dropped", "inside a chunk", "after the header"])
def test_restore_refuses_a_truncated_object(backup_bucket, backed_up, databases, cut):
    blob = _object(backup_bucket, backed_up.object_key)
    start, records = _records(blob)
    end = {
        "last chunk dropped": records[-1][0],
        "inside a chunk": records[2][0] + 1000,
        "after the header": start,
    }[cut]
    truncated = blob[:end]
    _replace(backup_bucket, backed_up.object_key, truncated)
    # Even with a matching checksum, a cut at a chunk boundary is detected by the final flag.
    Backup.objects.filter(pk=backed_up.pk).update(sha256=hashlib.sha256(truncated).hexdigest())
    backup_bucket.delete_object(Bucket=BUCKET, Key=backed_up.object_key + ".json")
    empty = databases.create("dst")
    with pytest.raises(services.BackupError, match="truncated"):
        services.backup_restore(object_key=backed_up.object_key, target=empty)
    assert relation_count(empty) == 0


def test_restore_refuses_reordered_chunks(backup_bucket, backed_up, databases):
    blob = _object(backup_bucket, backed_up.object_key)
    start, records = _records(blob)
    (a0, a1), (b0, b1) = records[1], records[2]
    swapped = blob[:a0] + blob[b0:b1] + blob[a0:a1] + blob[b1:]
    _replace(backup_bucket, backed_up.object_key, swapped)
    Backup.objects.filter(pk=backed_up.pk).update(sha256=hashlib.sha256(swapped).hexdigest())
    backup_bucket.delete_object(Bucket=BUCKET, Key=backed_up.object_key + ".json")
    empty = databases.create("dst")
    with pytest.raises(services.BackupError, match="chunk 1 failed authentication"):
        services.backup_restore(object_key=backed_up.object_key, target=empty)


def test_restore_refuses_a_wrong_key(backed_up, databases, settings):
    import base64

    settings.AUTOGLUE_BACKUP_KEYS = f"{KEY_ID}:{base64.b64encode(b'x' * 32).decode()}"
    empty = databases.create("dst")
    with pytest.raises(services.BackupError, match="key is wrong"):
        services.backup_restore(object_key=backed_up.object_key, target=empty)
    assert relation_count(empty) == 0


def test_restore_names_a_key_that_is_no_longer_configured(backed_up, databases, settings):
    import base64

    settings.AUTOGLUE_BACKUP_KEYS = f"bk-new:{base64.b64encode(b'y' * 32).decode()}"
    empty = databases.create("dst")
    with pytest.raises(services.BackupError, match="'bk-test' is not configured"):
        services.backup_restore(object_key=backed_up.object_key, target=empty)


def test_backup_after_a_key_rotation_uses_the_new_key_and_old_backups_stay_readable(
    backed_up, source, databases, settings
):
    import base64

    old = settings.AUTOGLUE_BACKUP_KEYS
    settings.AUTOGLUE_BACKUP_KEYS = f"{old},bk-new:{base64.b64encode(b'z' * 32).decode()}"
    settings.AUTOGLUE_BACKUP_ACTIVE_KEY = "bk-new"
    newer = services.backup_create(target=source)
    assert newer.key_id == "bk-new"
    services.backup_verify(object_key=backed_up.object_key)
    services.backup_verify(object_key=newer.object_key)


def test_failed_dump_is_recorded_and_leaves_no_object(backup_bucket, databases):
    from apps.maintenance.postgres import Target

    missing = databases.create("gone")
    with missing.connect(autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int)")
    target = Target(params={**missing.params, "user": "no_such_role"}, password="")
    with pytest.raises(services.BackupError):
        services.backup_create(target=target)
    assert backup_bucket.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


def test_restore_command_lists_backups_and_restores_one(backed_up, source, databases, capsys):
    call_command("restore")
    listing = capsys.readouterr().out
    assert backed_up.object_key in listing
    assert "complete" in listing
    empty = databases.create("dst")
    url = "postgresql://{user}@{host}:{port}/{dbname}".format(**empty.params)
    call_command("restore", backed_up.object_key, "--target", url)
    assert table_checksums(empty) == table_checksums(source)


@pytest.mark.django_db(transaction=True)
def test_a_restored_database_shows_its_own_backup_and_job_as_finished_not_running(
    backup_bucket, databases, capsys
):
    # The platform backs up its own database: the backup's record and its job run are committed
    # as `running` before pg_dump starts, so the dump holds them so.
    job = JobRun.objects.create(kind="backup", queue="maintenance", status="running", attempts=1)
    backed_up = services.backup_create(job_id=job.pk)
    restored = databases.create("dst")
    url = "postgresql://{user}@{host}:{port}/{dbname}".format(**restored.params)

    call_command("restore", backed_up.object_key, "--target", url)

    with restored.connect() as conn:
        backup_row = conn.execute(
            "SELECT status, sha256, size_bytes, finished_at IS NOT NULL FROM maintenance_backup "
            "WHERE object_key = %s",
            [backed_up.object_key],
        ).fetchone()
        job_row = conn.execute(
            "SELECT status, finished_at IS NOT NULL FROM jobs_jobrun WHERE id = %s", [job.pk]
        ).fetchone()
        note = conn.execute(
            "SELECT chunk FROM jobs_joblog WHERE job_id = %s ORDER BY id DESC LIMIT 1", [job.pk]
        ).fetchone()
    assert backup_row == ("succeeded", backed_up.sha256, backed_up.size_bytes, True)
    assert job_row == ("succeeded", True)
    assert "restored from this backup" in note[0]
    out = capsys.readouterr().out
    assert f"marked backup {backed_up.object_key} succeeded" in out

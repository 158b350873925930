"""Defects found in an outside review of the maintenance app, each pinned by a test.

Real PostgreSQL and the moto S3 server over HTTP, as in the other backup tests. Where a test
needs S3 to fail at one precise call, the failure is injected into the real boto3 client with a
botocore event hook (the request never leaves the client); everything else is the real service.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import struct

import pytest
from botocore.exceptions import ClientError
from django.core.management import CommandError, call_command

from apps.maintenance import archive, services, storage
from apps.maintenance.models import Backup
from apps.maintenance.tests.conftest import BUCKET, fill_source

KEY = b"\x01" * 32


@pytest.fixture
def source(databases):
    target = databases.create("src")
    fill_source(target, random_mib=6)
    return target


def _failing_client(operation: str, *, when=lambda params: True):  # type: ignore[no-untyped-def]
    """A real S3 client whose `operation` calls fail (as S3 would with a 500) when `when`."""
    real = storage.s3_client

    def make():  # type: ignore[no-untyped-def]
        client = real()

        def fail(params, **_):  # type: ignore[no-untyped-def]
            if when(params):
                raise ClientError(
                    {"Error": {"Code": "InternalError", "Message": "injected"}}, operation
                )

        client.meta.events.register(f"before-parameter-build.s3.{operation}", fail)
        return client

    return make


# --- (3) management commands print readable errors, not tracebacks -----------------------------


def test_restore_list_without_a_bucket_setting_is_a_readable_command_error(db, settings):
    settings.BACKUP_S3_BUCKET = ""
    with pytest.raises(CommandError, match="BACKUP_S3_BUCKET is not set"):
        call_command("restore")


def test_restore_verify_without_a_bucket_setting_is_a_readable_command_error(db, settings):
    settings.BACKUP_S3_BUCKET = ""
    with pytest.raises(CommandError, match="BACKUP_S3_BUCKET is not set"):
        call_command("restore", "autoglue/backups/x.agbk", "--verify-only")


def test_restore_list_of_a_bucket_that_does_not_exist_names_the_s3_error(
    backup_bucket, db, settings
):
    settings.BACKUP_S3_BUCKET = "no-such-bucket-here"
    with pytest.raises(CommandError, match="NoSuchBucket"):
        call_command("restore")


def test_backup_command_names_the_s3_error_when_the_bucket_does_not_exist(
    backup_bucket, db, settings
):
    settings.BACKUP_S3_BUCKET = "no-such-bucket-here"
    with pytest.raises(CommandError, match="NoSuchBucket"):
        call_command("backup", "--no-prune")
    assert Backup.objects.get().status == Backup.Status.FAILED


# --- (5) the header's chunk size cannot make a reader buffer a whole object -------------------


def _claiming_chunk_size(blob: bytes, chunk_size: int) -> bytes:
    """The archive with its header edited to claim `chunk_size` (and, as a forger would, the
    first chunk's length field raised to match)."""
    start = len(archive.MAGIC) + 1
    (length,) = struct.unpack(">I", blob[start : start + 4])
    header = json.loads(blob[start + 4 : start + 4 + length])
    header["chunk_size"] = chunk_size
    edited = json.dumps(header, sort_keys=True).encode()
    rest = blob[start + 4 + length :]
    first_len = struct.pack(">I", min(chunk_size + 16, 0xFFFFFFFF))
    return blob[:start] + struct.pack(">I", len(edited)) + edited + first_len + rest[4:]


def _sealed(key_id: str) -> bytes:
    sealer = archive.Sealer(key=KEY, key_id=key_id, header={}, chunk_size=1000)
    return sealer.write(os.urandom(5000)) + sealer.close()


def test_a_header_claiming_an_oversized_chunk_is_refused_before_any_chunk_is_read():
    blob = _claiming_chunk_size(_sealed("k1"), 1 << 31)
    reads: list[int] = []
    stream = io.BytesIO(blob)

    def read(n: int) -> bytes:
        reads.append(n)
        return stream.read(n)

    with pytest.raises(archive.ArchiveError, match="chunk size"):
        _, chunks = archive.open_archive(read, lambda _: KEY)
        b"".join(chunks)
    # Nothing past the header was asked for, let alone a 2 GiB "chunk".
    assert max(reads) < 64 * 1024


def test_the_writer_refuses_a_chunk_size_no_reader_would_accept():
    with pytest.raises(ValueError, match="chunk_size"):
        archive.Sealer(key=KEY, key_id="k1", header={}, chunk_size=archive.MAX_CHUNK_SIZE + 1)


def test_verify_refuses_an_object_whose_header_claims_an_oversized_chunk(backup_bucket, db):
    blob = _claiming_chunk_size(_sealed("bk-test"), 1 << 30)
    key = "autoglue/backups/2026/01/01/huge.agbk"
    backup_bucket.put_object(Bucket=BUCKET, Key=key, Body=blob)
    backup_bucket.put_object(
        Bucket=BUCKET, Key=key + ".json", Body=json.dumps({"sha256": "0" * 64}).encode()
    )
    with pytest.raises(services.BackupError, match="chunk size"):
        services.backup_verify(object_key=key)


# --- (3) S3 failing at the end of a backup leaves nothing behind --------------------------------


def test_a_failed_manifest_upload_leaves_no_backup_object_behind(
    backup_bucket, source, monkeypatch
):
    monkeypatch.setattr(
        storage,
        "s3_client",
        _failing_client("PutObject", when=lambda p: p.get("Key", "").endswith(".json")),
    )
    with pytest.raises(services.BackupError):
        services.backup_create(target=source)
    assert backup_bucket.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0
    assert Backup.objects.get().status == Backup.Status.FAILED


def test_an_s3_error_on_a_later_part_aborts_the_upload_and_records_the_failure(
    backup_bucket, source, monkeypatch
):
    monkeypatch.setattr(
        storage,
        "s3_client",
        _failing_client("UploadPart", when=lambda p: p.get("PartNumber", 0) >= 2),
    )
    with pytest.raises(services.BackupError, match="InternalError"):
        services.backup_create(target=source)
    assert backup_bucket.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0
    assert backup_bucket.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    record = Backup.objects.get()
    assert record.status == Backup.Status.FAILED
    assert "InternalError" in record.error


# --- checked and sound: pinned so a later change cannot regress them ---------------------------


@pytest.mark.parametrize(
    "value", ["1.5", "1e3", "", " ", "\u00bd", "9" * 5000, "-0", "0x10", "\x00", "365 days"]
)
def test_odd_expiry_windows_are_a_400_or_a_list_never_a_500(client_for, owner, org, value):
    response = client_for(owner, org).get("/api/v1/expiring-keys", {"within_days": value})
    assert response.status_code in (200, 400)
    if response.status_code == 400:
        assert "within_days" in response.json()["message"]


@pytest.mark.parametrize(
    "url", ["not a url", "postgres://u@h/", "postgresql://u@127.0.0.1:notaport/db"]
)
def test_restore_command_refuses_an_odd_target_readably(backup_bucket, db, url):
    with pytest.raises(CommandError):
        call_command("restore", "autoglue/backups/x.agbk", "--target", url)


def test_schedule_migration_reversed_and_applied_twice_leaves_each_schedule_once(db):
    from django.apps import apps as django_apps
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    migration = importlib.import_module("apps.maintenance.migrations.0002_schedules")
    names = list(migration.SCHEDULES)
    migration.remove_schedules(django_apps, None)
    assert not PeriodicTask.objects.filter(name__in=names).exists()
    migration.create_schedules(django_apps, None)
    migration.create_schedules(django_apps, None)
    assert sorted(PeriodicTask.objects.filter(name__in=names).values_list("name", flat=True)) == (
        sorted(names)
    )
    pairs = list(IntervalSchedule.objects.values_list("every", "period"))
    assert len(pairs) == len(set(pairs))


def test_pg_dump_dying_mid_stream_fails_the_backup_and_aborts_the_upload(
    backup_bucket, source, settings, tmp_path
):
    from apps.maintenance.postgres import find_tool

    major = source.server_major()
    real, _ = find_tool("pg_dump", at_least=major, prefer=major)
    # A pg_dump that stops after 6 MB (more than one part) and exits non-zero, as one killed
    # half-way through would.
    wrapper = tmp_path / "pg_dump"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "--version" ]; then exec {real} --version; fi\n'
        f'{real} "$@" | head -c 6000000\n'
        "exit 1\n"
    )
    wrapper.chmod(0o755)
    settings.BACKUP_PG_BIN_DIR = str(tmp_path)
    with pytest.raises(services.BackupError, match="pg_dump failed"):
        services.backup_create(target=source)
    assert backup_bucket.list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0
    assert backup_bucket.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []) == []
    assert Backup.objects.get().status == Backup.Status.FAILED


def test_the_backup_key_appears_in_no_transcript_record_manifest_or_object_metadata(
    backup_bucket, db, settings
):
    import base64

    from apps.jobs.models import JobLog
    from apps.jobs.services import job_enqueue
    from apps.jobs.tests.support import run_queued
    from apps.maintenance.tests.conftest import KEY as CONFIGURED

    job = job_enqueue(kind="backup")
    assert run_queued("backup") == ["succeeded"]
    job.refresh_from_db()
    backup = Backup.objects.get(job=job)
    raw = base64.b64decode(CONFIGURED)
    needles = [CONFIGURED, raw.hex(), base64.b64encode(raw).decode().rstrip("=")]
    transcript = "".join(JobLog.objects.filter(job=job).values_list("chunk", flat=True))
    row = json.dumps(list(Backup.objects.filter(pk=backup.pk).values().get().values()), default=str)
    manifest = _object_text(backup_bucket, backup.object_key + ".json")
    head = backup_bucket.head_object(Bucket=BUCKET, Key=backup.object_key)
    for haystack in (transcript, json.dumps(job.result), row, manifest, str(head["Metadata"])):
        for needle in needles:
            assert needle not in haystack


def test_a_malformed_backup_key_fails_the_job_naming_its_id_not_its_material(
    backup_bucket, db, settings
):
    import base64

    from apps.jobs.models import JobLog
    from apps.jobs.services import job_enqueue
    from apps.jobs.tests.support import run_queued

    short = base64.b64encode(b"\x42" * 31).decode()
    settings.AUTOGLUE_BACKUP_KEYS = f"bk-short:{short}"
    job = job_enqueue(kind="backup")
    assert run_queued("backup") == ["failed"]
    job.refresh_from_db()
    transcript = "".join(JobLog.objects.filter(job=job).values_list("chunk", flat=True))
    assert "'bk-short' is not base64 of exactly 32 bytes" in transcript + str(job.error)
    assert short not in transcript + str(job.error) + json.dumps(job.result)


def _object_text(client, key: str) -> str:  # type: ignore[no-untyped-def]
    return client.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode()

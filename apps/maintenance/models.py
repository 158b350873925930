"""Records of database backups. The backup key and the bucket's credentials are never here:
the database being backed up must not hold what protects its own copies."""

from __future__ import annotations

import uuid

from django.db import models


class Backup(models.Model):
    """One backup attempt: where its object is, how big it is, its SHA-256 and how it ended.

    The object also has a manifest beside it in the bucket (`<key>.json`: size, SHA-256, key
    id), so backups can be listed and verified when this table is gone with its database.
    """

    class Status(models.TextChoices):
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    bucket = models.CharField(max_length=255)
    object_key = models.CharField(max_length=1024, unique=True)
    # The id (never the material) of the backup key that sealed it.
    key_id = models.CharField(max_length=64)
    database = models.CharField(max_length=255, blank=True, default="")
    server_version = models.CharField(max_length=32, blank=True, default="")
    # Bytes of the stored (compressed, encrypted) object, and of pg_dump's output.
    size_bytes = models.BigIntegerField(default=0)
    dump_bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True, default="")
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    job = models.ForeignKey(
        "jobs.JobRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"backup {self.object_key} ({self.status})"

"""Job runs and their logs.

A `JobRun` is written in the same transaction as the change that asks for it (status `queued`);
the Celery message is sent after commit, and a reaper re-sends queued rows whose message never
arrived, so a crash between commit and publish loses nothing. A worker *claims* a run with a
conditional update (queued/retrying -> running), so a duplicate delivery does nothing.

A `JobLog` row is one flushed chunk of a job's output. Its bigint id is the cursor clients page
and stream with; rows are only ever inserted (and, past the retention, deleted in bulk).
"""

from __future__ import annotations

import uuid

from django.db import models


class JobRun(models.Model):
    """One execution of a background job: what it works on, where it stands, what it said."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELED = "canceled"
        RETRYING = "retrying"

    class SubjectType(models.TextChoices):
        NONE = "", "none"
        SERVER = "server"
        CLUSTER_RUN = "cluster_run"
        DOMAIN = "domain"

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING, Status.RETRYING)
    FINAL_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=64, db_index=True)
    queue = models.CharField(max_length=32, default="default")
    # Null for platform jobs (sweeps, backups); set for work done on one tenant's objects.
    organization = models.ForeignKey(
        "orgs.Organization",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    subject_type = models.CharField(
        max_length=16, choices=SubjectType.choices, blank=True, default=""
    )
    subject_id = models.UUIDField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=1)
    # Ids and options only: Celery messages and this column are never a place for secrets.
    payload = models.JSONField(default=dict, blank=True)
    queued_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # When the Celery message was last published; the reaper re-sends a queued run whose
    # message is older than JOB_RESEND_AFTER_SECONDS and was never claimed.
    sent_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    error = models.TextField(blank=True, default="")
    celery_task_id = models.CharField(max_length=255, blank=True, default="")
    worker = models.CharField(max_length=255, blank=True, default="")
    result = models.JSONField(default=dict, blank=True)
    # The W3C traceparent of the request that queued (or retried) the run, so the run's trace
    # continues it whichever delivery claims the row: the first message, a reaper's resend or a
    # retry ("" with tracing off). Ids only, like the payload.
    trace_parent = models.CharField(max_length=64, blank=True, default="", db_default="")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-queued_at"]
        indexes = [
            models.Index(fields=["status", "kind"], name="jobs_jobrun_status_kind"),
            models.Index(
                fields=["subject_type", "subject_id", "-queued_at"], name="jobs_jobrun_subject"
            ),
            # readyz's "any waiting run in this queue?" and the oldest waiting age per queue.
            models.Index(fields=["queue", "status", "queued_at"], name="jobs_jobrun_queue_wait"),
        ]
        constraints = [
            # One active job of a kind per subject: a second bootstrap of the same bastion, or a
            # second reconcile of the same zone, cannot be queued while one is in flight.
            models.UniqueConstraint(
                fields=["kind", "subject_type", "subject_id"],
                condition=models.Q(status__in=["queued", "running", "retrying"])
                & models.Q(subject_id__isnull=False),
                name="jobs_jobrun_unique_active_subject",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.id} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL_STATUSES


class JobLog(models.Model):
    """A chunk of a job's output (one or more lines), secrets already redacted. Read by subject
    after a cursor: `(subject_type, subject_id, id)` is the index that serves both the paged
    route and the live stream."""

    class Stream(models.TextChoices):
        STDOUT = "stdout"
        STDERR = "stderr"
        SYSTEM = "system"

    id = models.BigAutoField(primary_key=True)
    job = models.ForeignKey(JobRun, on_delete=models.CASCADE, related_name="logs")
    organization_id = models.UUIDField(null=True, blank=True)
    subject_type = models.CharField(max_length=16, blank=True, default="")
    subject_id = models.UUIDField(null=True, blank=True)
    stream = models.CharField(max_length=8, choices=Stream.choices)
    chunk = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["subject_type", "subject_id", "id"], name="jobs_joblog_subject"),
            models.Index(fields=["job", "id"], name="jobs_joblog_job"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id}#{self.id}"


class ScheduleSuccess(models.Model):
    """When each periodic schedule (a django-celery-beat task name) last finished successfully.

    One row per schedule, overwritten on each success. Kept in PostgreSQL rather than Redis so
    "backup stale" and "beat stale" survive a restart of any process, and of a Redis without
    persistence (which would otherwise look like every schedule had never run)."""

    name = models.CharField(max_length=200, primary_key=True)
    succeeded_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} @ {self.succeeded_at:%Y-%m-%d %H:%M:%S}"


class ScheduleFirstRun(models.Model):
    """When each periodic schedule first ran to an end on this installation, whatever the outcome
    (runs beat started only: a run started by hand does not count; see `schedule_run_record`).

    Written once per schedule and never moved: with no `ScheduleSuccess` row it says how long a
    schedule has been running without ever succeeding (a backup failing since the first day).
    django-celery-beat's `PeriodicTask.date_changed` cannot say it: beat saves the row each time
    it sends the task, so that date follows the last attempt."""

    name = models.CharField(max_length=200, primary_key=True)
    ran_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} first ran @ {self.ran_at:%Y-%m-%d %H:%M:%S}"

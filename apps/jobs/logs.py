"""Writing a job's transcript: batched, redacted, append-only.

`LogWriter.write()` is cheap and thread-safe; lines are inserted in one `bulk_create` when
`JOB_LOG_FLUSH_BYTES` have gathered or `JOB_LOG_FLUSH_SECONDS` have passed (the runner's
heartbeat thread flushes a quiet job), and at the end. Only complete lines are flushed while a
job runs, so a secret can never be split across two stored chunks and escape redaction; a
partial line is held until its newline arrives (or the job ends, or it grows past the flush
size).

Redaction: every secret value the job holds is registered with `add_secret()` before it is used:
the value itself, each of its lines (a PEM key arrives line by line) and its base64 form. Each is
replaced by `[REDACTED]` in every chunk before the chunk is stored.
"""

from __future__ import annotations

import base64
import threading
import time
from typing import TYPE_CHECKING

from django.conf import settings

from apps.jobs import bus
from apps.jobs.models import JobLog

if TYPE_CHECKING:
    from apps.jobs.models import JobRun

REDACTED = "[REDACTED]"
# Shorter fragments of a secret (a PEM's "-----END" line, a blank line) are not worth hiding
# and would redact ordinary text.
_MIN_SECRET_FRAGMENT = 12


class Redactor:
    """Replaces every registered secret value in a text."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._ordered: list[str] = []

    def add(self, value: str | bytes | None) -> None:
        if not value:
            return
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
        raw = text.encode()
        candidates = {text, base64.b64encode(raw).decode()}
        candidates.update(line.strip() for line in text.splitlines())
        for candidate in candidates:
            if len(candidate) >= _MIN_SECRET_FRAGMENT and candidate not in self._values:
                self._values.add(candidate)
        # Longest first, so a whole key is replaced before its lines are looked for.
        self._ordered = sorted(self._values, key=len, reverse=True)

    @property
    def longest(self) -> int:
        return len(self._ordered[0]) if self._ordered else 0

    def __call__(self, text: str) -> str:
        for value in self._ordered:
            if value in text:
                text = text.replace(value, REDACTED)
        return text


class LogWriter:
    """The transcript of one job run."""

    def __init__(self, job: JobRun) -> None:
        self.job = job
        self.redact = Redactor()
        self._lock = threading.Lock()
        self._pending: list[tuple[str, str]] = []
        self._partial: dict[str, str] = {}
        self._pending_bytes = 0
        self._last_flush = time.monotonic()
        self._flush_bytes = int(settings.JOB_LOG_FLUSH_BYTES)
        self._flush_seconds = float(settings.JOB_LOG_FLUSH_SECONDS)
        self._channels = [bus.job_channel(job.pk)]
        if job.subject_id:
            self._channels.append(bus.subject_channel(job.subject_type, job.subject_id))
        self.lines_written = 0

    def add_secret(self, value: str | bytes | None) -> None:
        with self._lock:
            self.redact.add(value)

    def system(self, text: str) -> None:
        """A line of our own ("connecting to ...", "bastion ready")."""
        self.write(JobLog.Stream.SYSTEM, text if text.endswith("\n") else text + "\n")

    def write(self, stream: str, text: str) -> None:
        if not text:
            return
        with self._lock:
            held = self._partial.pop(stream, "") + text
            complete, sep, rest = held.rpartition("\n")
            if sep:
                self._pending.append((stream, complete + "\n"))
                self._pending_bytes += len(complete) + 1
            if rest:
                # A very long line is flushed in pieces; the piece kept back is as long as the
                # longest secret, so no secret can straddle two stored chunks.
                keep = max(self.redact.longest - 1, 0)
                if len(rest) >= self._flush_bytes + keep:
                    cut = len(rest) - keep
                    self._pending.append((stream, rest[:cut]))
                    self._pending_bytes += cut
                    rest = rest[cut:]
                if rest:
                    self._partial[stream] = rest
            due = (
                self._pending_bytes >= self._flush_bytes
                or time.monotonic() - self._last_flush >= self._flush_seconds
            )
        if due:
            self.flush()

    def flush(self, *, final: bool = False) -> int:
        """Store what has gathered; with `final`, partial lines too. Returns rows written."""
        with self._lock:
            if final:
                for stream, rest in self._partial.items():
                    self._pending.append((stream, rest))
                self._partial.clear()
            pending, self._pending, self._pending_bytes = self._pending, [], 0
            self._last_flush = time.monotonic()
            if not pending:
                return 0
            chunks = self._merge(pending)
            rows = [
                JobLog(
                    job_id=self.job.pk,
                    organization_id=self.job.organization_id,
                    subject_type=self.job.subject_type,
                    subject_id=self.job.subject_id,
                    stream=stream,
                    chunk=self.redact(chunk),
                )
                for stream, chunk in chunks
            ]
            try:
                JobLog.objects.bulk_create(rows)
            except Exception:
                # Keep the lines for the next flush rather than lose them to a database blip.
                self._pending = pending + self._pending
                self._pending_bytes += sum(len(text) for _, text in pending)
                raise
            self.lines_written += len(rows)
        bus.publish(self._channels, str(rows[-1].pk))
        return len(rows)

    @staticmethod
    def _merge(pending: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Consecutive pieces of one stream become one chunk."""
        merged: list[tuple[str, str]] = []
        for stream, text in pending:
            if merged and merged[-1][0] == stream:
                merged[-1] = (stream, merged[-1][1] + text)
            else:
                merged.append((stream, text))
        return merged

    def flush_if_due(self) -> None:
        if time.monotonic() - self._last_flush >= self._flush_seconds:
            self.flush()

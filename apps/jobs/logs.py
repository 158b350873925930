"""Writing a job's transcript: batched, redacted, append-only.

`LogWriter.write()` is cheap and thread-safe; lines are inserted in one `bulk_create` when
`JOB_LOG_FLUSH_BYTES` have gathered or `JOB_LOG_FLUSH_SECONDS` have passed (the runner's
heartbeat thread flushes a quiet job), and at the end. Only complete lines are flushed while a
job runs, so a secret printed on one line is never split across two stored chunks; a partial
line is held until its newline arrives (or the job ends, or it grows past the flush size).

Redaction: every secret value the job holds is registered with `add_secret()` before it is used,
and found in every chunk before the chunk is stored, in any encoding and however it is wrapped
(apps.jobs.redaction). Each stream keeps the last few characters of its previous chunk as
context, so a secret that straddles two flushes is still found in the second; the first is
redacted on its own for any piece longer than `redaction.CONTEXT` characters, and a flush holds
back its last line, once, when it ends like the start of a secret (`_hold_back`).

System lines are one line each: a value with a line break or a control character in it is
escaped (`log_quote`), so a name cannot forge a line of the transcript.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from django.conf import settings

from apps.core.validators import UNSAFE_TEXT
from apps.jobs import bus
from apps.jobs.models import JobLog
from apps.jobs.redaction import REDACTED, Redactor

__all__ = ["REDACTED", "LogWriter", "Redactor", "log_quote", "one_line"]

if TYPE_CHECKING:
    from apps.jobs.models import JobRun

logger = logging.getLogger(__name__)


class LogWriter:
    """The transcript of one job run."""

    def __init__(self, job: JobRun) -> None:
        self.job = job
        self.redact = Redactor()
        self._lock = threading.Lock()
        self._pending: list[tuple[str, str]] = []
        self._partial: dict[str, str] = {}
        # Per stream: the end of the last stored chunk, for a secret continuing in the next; the
        # line held back from the last flush (at the start of `_partial`); and the last line
        # held, which is never held twice (a quiet job's line is late by one flush at most).
        self._context: dict[str, str] = {}
        self._held: dict[str, str] = {}
        self._held_once: dict[str, str] = {}
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
        """A line of our own ("connecting to ...", "bastion ready"): always one line."""
        self.write(JobLog.Stream.SYSTEM, one_line(text.removesuffix("\n")) + "\n")

    def write(self, stream: str, text: str) -> None:
        if not text:
            return
        with self._lock:
            # Another stream speaks: a held line goes out first, so streams keep their order.
            self._release_held(keep=stream)
            held = self._partial.pop(stream, "") + text
            self._held.pop(stream, None)
            complete, sep, rest = held.rpartition("\n")
            if sep:
                self._pending.append((stream, complete + "\n"))
                self._pending_bytes += len(complete) + 1
            if rest:
                # A very long line is flushed in pieces. The piece kept back can hold the
                # longest form of a secret even with a separator after every two characters,
                # and the cut never falls inside a secret found in what has arrived, so no
                # secret straddles two stored chunks.
                keep = max(2 * self.redact.longest - 1, 0)
                if len(rest) >= self._flush_bytes + keep:
                    cut = self.redact.safe_cut(rest, len(rest) - keep)
                    if cut > 0:
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
            self._release_held()
            if final:
                for stream, rest in self._partial.items():
                    self._pending.append((stream, rest))
                self._partial.clear()
            pending, self._pending, self._pending_bytes = self._pending, [], 0
            if pending and not final:
                pending = self._hold_back(pending)
            self._last_flush = time.monotonic()
            if not pending:
                return 0
            context = dict(self._context)
            rows = []
            for stream, chunk in self._merge(pending):
                redacted, context[stream] = self._redacted(stream, chunk, context)
                rows.append(
                    JobLog(
                        job_id=self.job.pk,
                        organization_id=self.job.organization_id,
                        subject_type=self.job.subject_type,
                        subject_id=self.job.subject_id,
                        stream=stream,
                        chunk=redacted,
                    )
                )
            try:
                JobLog.objects.bulk_create(rows)
            except Exception:
                # Keep the lines for the next flush rather than lose them to a database blip.
                self._pending = pending + self._pending
                self._pending_bytes += sum(len(text) for _, text in pending)
                raise
            self._context = context
            self.lines_written += len(rows)
        bus.publish(self._channels, str(rows[-1].pk))
        return len(rows)

    def _release_held(self, keep: str = "") -> None:
        """Lines held back at the last flush (but the stream `keep`'s) go out now, before
        anything pending: what is pending was written after them, by their own stream."""
        for stream in [name for name in self._held if name != keep]:
            line = self._held.pop(stream)
            rest = self._partial.pop(stream, "")[len(line) :]
            self._pending.insert(0, (stream, line))
            self._pending_bytes += len(line)
            if rest:
                self._partial[stream] = rest

    def _hold_back(self, pending: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Keep the batch's last line for the next flush if it ends like the first piece of a
        secret printed over several lines (that piece alone is too short to be recognised).
        Only the very last line is held, so lines of the streams stay in the order written."""
        stream, text = pending[-1]
        if not text.endswith("\n"):
            return pending  # a piece of a long line: `write` already cut it outside any secret
        head, _, line = text[:-1].rpartition("\n")
        line += "\n"
        if self._held_once.get(stream) == line or not self.redact.may_continue(line):
            return pending
        self._held[stream] = self._held_once[stream] = line
        self._partial[stream] = line + self._partial.get(stream, "")
        return pending[:-1] + ([(stream, head + "\n")] if head else [])

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

    def _redacted(self, stream: str, chunk: str, context: dict[str, str]) -> tuple[str, str]:
        """The chunk redacted, and the stream's next context. Fails closed: a redaction error
        stores the chunk as `[REDACTED]` rather than losing its lines or failing the job."""
        try:
            return self.redact.redact(chunk, context=context.get(stream, ""))
        except Exception as error:
            # The type only: the message or traceback may quote the text being redacted.
            logger.error(
                "job %s: redaction failed (%s); chunk stored as redacted",
                self.job.pk,
                type(error).__name__,
            )
            return REDACTED + ("\n" if chunk.endswith("\n") else ""), ""

    def flush_if_due(self) -> None:
        if time.monotonic() - self._last_flush >= self._flush_seconds:
            self.flush()


def one_line(text: str) -> str:
    """`text` with every character that could end or restyle a line escaped (`\\n`, `\\x1b`)."""
    return UNSAFE_TEXT.sub(lambda match: match.group().encode("unicode_escape").decode(), text)


def log_quote(value: object) -> str:
    """A value for a system line, quoted, with anything that could break or restyle the line
    escaped (`"prod\\nfake line"`): names come from users."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{one_line(text)}"'

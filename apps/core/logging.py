"""Structured logs: one JSON object per line, each carrying the id of the request it belongs to."""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime

from opentelemetry import trace

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys()
    | {"message", "asctime", "request_id", "trace_id", "span_id"}
)


class RequestIDFilter(logging.Filter):
    """Stamps the current request id (or job id) on every record, and the current trace and
    span ids when a span is active (tracing on, autoglue/tracing.py)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = request_id_var.get()
        if not getattr(record, "trace_id", ""):
            # The API's no-op span when tracing is off: one context lookup, no ids.
            context = trace.get_current_span().get_span_context()
            if context.is_valid:
                record.trace_id = trace.format_trace_id(context.trace_id)
                record.span_id = trace.format_span_id(context.span_id)
        return True


# What paramiko says when a peer's first lines are not an SSH banner. Its messages (the error,
# its traceback, the "Banner:" debug line) quote the peer's bytes: a server aimed at another
# service would turn our logs into a banner reader.
SSH_NOT_A_SERVER = (
    "Indecipherable protocol version",
    "Error reading SSH protocol banner",
    "Invalid SSH banner",
    "Incompatible version",
    "Banner: ",
)
SSH_NOT_A_SERVER_MESSAGE = "the peer did not answer as an SSH server (its reply is not logged)"


class SSHPeerBytesFilter(logging.Filter):
    """On paramiko's transport logger: a line that would quote what a non-SSH peer sent is
    replaced by a fixed one."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is not ours to repair
            return True
        if any(marker in text for marker in SSH_NOT_A_SERVER):
            record.msg, record.args = SSH_NOT_A_SERVER_MESSAGE, None
            record.exc_info = record.exc_text = None
        return True


def _extras(record: logging.LogRecord) -> dict:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}


class JSONFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", "request_id", ...extra}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", ""),
        }
        trace_id = getattr(record, "trace_id", "")
        if trace_id:
            payload["trace_id"] = trace_id
            payload["span_id"] = getattr(record, "span_id", "")
        payload.update(_extras(record))
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class ConsoleFormatter(logging.Formatter):
    """Readable single lines for a developer's terminal, with the same fields."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        rid = getattr(record, "request_id", "")
        line = f"{record.levelname:<7} {record.name}: {record.getMessage()}"
        if extras:
            line += f" {extras}"
        if rid:
            line += f" request_id={rid}"
        trace_id = getattr(record, "trace_id", "")
        if trace_id:
            line += f" trace_id={trace_id}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line

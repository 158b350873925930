"""Every auditable event type, in one registry. A test (tests/test_event_coverage.py) fails
when a type here has no test asserting its entry."""

from __future__ import annotations

# Changes to resources, written by the model signals (apps.audit.signals).
RESOURCE_CREATE = "resource.create"
RESOURCE_UPDATE = "resource.update"
RESOURCE_DELETE = "resource.delete"
RESOURCE_ATTACH = "resource.attach"
RESOURCE_DETACH = "resource.detach"
# Secret reads (the names are event types, not secrets).
SECRET_REVEAL = "secret.reveal"  # noqa: S105
SECRET_DOWNLOAD = "secret.download"  # noqa: S105
SECRET_KUBECONFIG = "secret.kubeconfig"  # noqa: S105
# Identity.
AUTH_SIGN_IN = "auth.sign_in"
AUTH_SIGN_IN_FAILED = "auth.sign_in_failed"
AUTH_REFRESH_REUSE = "auth.refresh_token_reuse"
KEY_CREATE = "key.create"
KEY_REVOKE = "key.revoke"
MEMBER_ROLE_CHANGE = "member.role_change"
# Jobs.
JOB_LAUNCH = "job.launch"
JOB_CANCEL = "job.cancel"
# The admin console (every admin action writes a LogEntry, which becomes this entry).
CONSOLE_ACTION = "console.action"

EVENT_TYPES: frozenset[str] = frozenset(
    {
        RESOURCE_CREATE,
        RESOURCE_UPDATE,
        RESOURCE_DELETE,
        RESOURCE_ATTACH,
        RESOURCE_DETACH,
        SECRET_REVEAL,
        SECRET_DOWNLOAD,
        SECRET_KUBECONFIG,
        AUTH_SIGN_IN,
        AUTH_SIGN_IN_FAILED,
        AUTH_REFRESH_REUSE,
        KEY_CREATE,
        KEY_REVOKE,
        MEMBER_ROLE_CHANGE,
        JOB_LAUNCH,
        JOB_CANCEL,
        CONSOLE_ACTION,
    }
)

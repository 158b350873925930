"""The event catalogue: every type is `<subject>.<what happened>`, with a `version` carried in
the envelope; a change to a payload that could break a receiver is a new version, never an
edit (docs/webhooks.md lists the payloads)."""

from __future__ import annotations

VERSION = 1

CLUSTER_RUN_STARTED = "cluster_run.started"
CLUSTER_RUN_SUCCEEDED = "cluster_run.succeeded"
CLUSTER_RUN_FAILED = "cluster_run.failed"
CLUSTER_RUN_CANCELED = "cluster_run.canceled"
BASTION_BOOTSTRAP_SUCCEEDED = "bastion_bootstrap.succeeded"
BASTION_BOOTSTRAP_FAILED = "bastion_bootstrap.failed"
SERVER_HOST_KEY_CHANGED = "server.host_key_changed"
DNS_RECONCILE_FAILED = "dns_reconcile.failed"
DNS_RECORD_CONFLICT = "dns_record.conflict"
BACKUP_SUCCEEDED = "backup.succeeded"
BACKUP_FAILED = "backup.failed"
API_KEY_CREATED = "api_key.created"
API_KEY_REVOKED = "api_key.revoked"
API_KEY_EXPIRING = "api_key.expiring"
MEMBER_ADDED = "member.added"
MEMBER_REMOVED = "member.removed"
MEMBER_ROLE_CHANGED = "member.role_changed"
AUDIT_CHAIN_VERIFICATION_FAILED = "audit_chain.verification_failed"
# Sent only by "send a test event", to the one endpoint asked.
WEBHOOK_TEST = "webhook.test"

EVENT_TYPES: tuple[str, ...] = (
    CLUSTER_RUN_STARTED,
    CLUSTER_RUN_SUCCEEDED,
    CLUSTER_RUN_FAILED,
    CLUSTER_RUN_CANCELED,
    BASTION_BOOTSTRAP_SUCCEEDED,
    BASTION_BOOTSTRAP_FAILED,
    SERVER_HOST_KEY_CHANGED,
    DNS_RECONCILE_FAILED,
    DNS_RECORD_CONFLICT,
    BACKUP_SUCCEEDED,
    BACKUP_FAILED,
    API_KEY_CREATED,
    API_KEY_REVOKED,
    API_KEY_EXPIRING,
    MEMBER_ADDED,
    MEMBER_REMOVED,
    MEMBER_ROLE_CHANGED,
    AUDIT_CHAIN_VERIFICATION_FAILED,
)

"""The listener that turns published facts (apps.core.events) into outbox rows of the types in
apps.webhooks.catalogue. Payloads carry ids, names and statuses, never a secret or a job's
error text (which may quote the tooling)."""

from __future__ import annotations

from typing import Any

from django.apps import apps as django_apps

from apps.webhooks import services
from apps.webhooks.catalogue import (
    API_KEY_CREATED,
    API_KEY_EXPIRING,
    API_KEY_REVOKED,
    AUDIT_CHAIN_VERIFICATION_FAILED,
    BACKUP_FAILED,
    BACKUP_SUCCEEDED,
    BASTION_BOOTSTRAP_FAILED,
    BASTION_BOOTSTRAP_SUCCEEDED,
    CLUSTER_RUN_CANCELED,
    CLUSTER_RUN_FAILED,
    CLUSTER_RUN_STARTED,
    CLUSTER_RUN_SUCCEEDED,
    DNS_RECONCILE_FAILED,
    DNS_RECORD_CONFLICT,
    MEMBER_ADDED,
    MEMBER_REMOVED,
    MEMBER_ROLE_CHANGED,
    SERVER_HOST_KEY_CHANGED,
)

# Job kind -> {final status -> event type}; `timed_out`-like endings arrive as failed.
_JOB_ENDINGS: dict[str, dict[str, str]] = {
    "cluster_action": {
        "succeeded": CLUSTER_RUN_SUCCEEDED,
        "failed": CLUSTER_RUN_FAILED,
        "canceled": CLUSTER_RUN_CANCELED,
    },
    "bootstrap_bastion": {
        "succeeded": BASTION_BOOTSTRAP_SUCCEEDED,
        "failed": BASTION_BOOTSTRAP_FAILED,
    },
    "dns_reconcile": {"failed": DNS_RECONCILE_FAILED},
    "backup": {"succeeded": BACKUP_SUCCEEDED, "failed": BACKUP_FAILED},
}
_SUBJECT_KEYS = {"cluster_run": "cluster_run_id", "server": "server_id", "domain": "domain_id"}
_HOST_KEY_FIELDS = frozenset({"ssh_host_key", "ssh_host_key_algo"})


def _job_data(job: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"job_id": str(job.pk), "kind": job.kind, "status": job.status}
    key = _SUBJECT_KEYS.get(job.subject_type)
    if key and job.subject_id:
        data[key] = str(job.subject_id)
    return data


def _after(changes: dict[str, Any], name: str, side: str = "after") -> Any:
    value = changes.get(name)
    return value.get(side) if isinstance(value, dict) else None


def _from_job(name: str, job: Any) -> list[tuple[str, dict[str, Any]]]:
    if name == "job.started":
        return [(CLUSTER_RUN_STARTED, _job_data(job))] if job.kind == "cluster_action" else []
    found = []
    event_type = _JOB_ENDINGS.get(job.kind, {}).get(job.status)
    if event_type:
        found.append((event_type, _job_data(job)))
    result = getattr(job, "result", None) or {}
    if job.kind == "dns_reconcile" and job.status == "succeeded" and result.get("conflict"):
        found.append((DNS_RECORD_CONFLICT, {**_job_data(job), "conflicts": result["conflict"]}))
    return found


def _from_audit(entry: Any) -> list[tuple[str, dict[str, Any]]]:
    changes = entry.changes or {}
    kind, obj = entry.event, entry.object_type
    if obj == "orgs.membership":
        side = "before" if kind == "resource.delete" else "after"
        data = {
            "membership_id": entry.object_id,
            "user_id": str(_after(changes, "user_id", side) or ""),
            "role": _after(changes, "role", side) or "",
        }
        if kind == "member.role_change":
            previous = _after(changes, "role", "before")
            return [(MEMBER_ROLE_CHANGED, {**data, "previous_role": previous})]
        if kind == "resource.create":
            return [(MEMBER_ADDED, data)]
        if kind == "resource.delete":
            return [(MEMBER_REMOVED, data)]
    if kind == "key.create" and _after(changes, "is_ephemeral"):
        return []  # a cluster run's short-lived bastion key, not a key anyone manages
    if kind in ("key.create", "key.revoke") and obj == "accounts.apikey":
        key = _api_key(entry.object_id)
        if key is None:
            return []
        if kind == "key.create":
            return [(API_KEY_CREATED, _key_data(key))]
        return [(API_KEY_REVOKED, {**_key_data(key), "reason": "revoked"})]
    host_key = _HOST_KEY_FIELDS & set(changes)
    if kind == "resource.update" and obj == "infrastructure.server" and host_key:
        # The pin was cleared or replaced through the API or console.
        data = {"server_id": entry.object_id, "reason": "reset"}
        return [(SERVER_HOST_KEY_CHANGED, data)]
    return []


def _api_key(key_id: Any) -> Any:
    """The key an audit entry names (its entry carries a display text, not the bare name)."""
    model = django_apps.get_model("accounts", "APIKey")
    return model.objects.filter(pk=key_id).only("pk", "name", "scope").first()


def _key_data(key: Any) -> dict[str, Any]:
    """How every api_key event names its key: id, the bare name (may be empty) and scope."""
    return {"api_key_id": str(key.pk), "name": key.name, "scope": key.scope}


def _keys_revoked_expired(facts: dict[str, Any]) -> list[tuple[Any, str, dict[str, Any]]]:
    """Org keys the expiry sweep revoked (a bulk update, with no audit entry of its own)."""
    return [
        (key.organization_id, API_KEY_REVOKED, {**_key_data(key), "reason": "expired"})
        for key in facts["keys"]
        if key.organization_id
    ]


def _from_verify(reports: list[Any]) -> list[tuple[Any, str, dict[str, Any]]]:
    found = []
    for report in reports:
        org_id = report.chain.removeprefix("org:") if report.chain.startswith("org:") else None
        broken = report.broken.as_dict() if report.broken else {}
        data = {"chain": report.chain, "seq": broken.get("seq"), "reason": broken.get("reason")}
        found.append((org_id, AUDIT_CHAIN_VERIFICATION_FAILED, data))
    return found


def _audit_entry(facts: dict[str, Any]) -> list[tuple[Any, str, dict[str, Any]]]:
    entry = facts["entry"]
    if not entry.organization_id:
        return []  # a person's own key, a sign-in: nothing an organization's endpoint hears
    return [(entry.organization_id, kind, data) for kind, data in _from_audit(entry)]


def _job(name: str, facts: dict[str, Any]) -> list[tuple[Any, str, dict[str, Any]]]:
    job = facts["job"]
    return [(job.organization_id, kind, data) for kind, data in _from_job(name, job)]


def _host_key_mismatch(facts: dict[str, Any]) -> list[tuple[Any, str, dict[str, Any]]]:
    server = facts["server"]
    data = {
        "server_id": str(server.pk),
        "reason": "mismatch",
        "pinned_fingerprint": facts["pinned"],
        "offered_fingerprint": facts["offered"],
    }
    return [(server.organization_id, SERVER_HOST_KEY_CHANGED, data)]


def _keys_expiring(facts: dict[str, Any]) -> list[tuple[Any, str, dict[str, Any]]]:
    found = []
    for key in facts["keys"]:
        data = {**_key_data(key), "expires_at": key.expires_at.isoformat()}
        found.append((key.organization_id, API_KEY_EXPIRING, data))
    # The sweep lists a key every hour until it expires: one query finds those announced.
    ids = [
        services.webhook_event_id(organization_id=org_id, type=kind, once_per=_once_per(kind, data))
        for org_id, kind, data in found
    ]
    announced = services.webhook_events_existing(ids)
    return [item for item, event_id in zip(found, ids, strict=True) if event_id not in announced]


def _once_per(event_type: str, data: dict[str, Any]) -> Any:
    """What makes a fact the same fact when it is reported again (None: every report is news).
    The sweep lists an expiring key every hour, a broken chain fails every verification, a
    reconcile finds the same conflict every run, a re-claimed job starts again, a mismatched
    host key is refused at every attempt: each is announced once per subject and state."""
    if event_type == API_KEY_EXPIRING:
        return [data["api_key_id"], data["expires_at"]]
    if event_type == AUDIT_CHAIN_VERIFICATION_FAILED:
        return [data["chain"], data["seq"], data["reason"]]
    if event_type == DNS_RECORD_CONFLICT:
        return [data.get("domain_id") or data["job_id"], data["conflicts"]]
    if event_type == SERVER_HOST_KEY_CHANGED and data.get("reason") == "mismatch":
        return [data["server_id"], data["pinned_fingerprint"], data["offered_fingerprint"]]
    if "job_id" in data:
        return [data["job_id"]]  # a job starts and ends once, however often it is claimed
    return None


def webhook_listener(name: str, facts: dict[str, Any]) -> None:
    """apps.core.events listener: the webhook events a published fact means, into the outbox
    in the publisher's transaction."""
    if name == "audit.entry":
        found = _audit_entry(facts)
    elif name in ("job.started", "job.ended"):
        found = _job(name, facts)
    elif name == "ssh.host_key_mismatch":
        found = _host_key_mismatch(facts)
    elif name == "api_key.expiring":
        found = _keys_expiring(facts)
    elif name == "api_key.revoked_expired":
        found = _keys_revoked_expired(facts)
    elif name == "audit.verify_failed":
        found = _from_verify(facts["reports"])
    else:
        return
    for organization_id, event_type, data in found:
        services.webhook_event_record(
            type=event_type,
            organization_id=organization_id,
            data=data,
            once_per=_once_per(event_type, data),
        )

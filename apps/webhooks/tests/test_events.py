"""Each event type is written where its fact happens (the audit entry, the job's end, the key
sweep, the SSH client, the chain check), with a documented payload that holds no secret."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts import services as account_services
from apps.audit import events as audit_events
from apps.audit.models import AuditEntry
from apps.audit.services import audit_record, audit_verify
from apps.core.events import event_publish
from apps.infrastructure.host_keys import server_reset_host_key
from apps.infrastructure.tests.factories import ServerFactory
from apps.jobs import services as jobs
from apps.jobs.models import JobRun
from apps.maintenance.services import api_keys_sweep
from apps.orgs.tests.factories import MembershipFactory
from apps.webhooks import services
from apps.webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def listening(org):
    """An endpoint that wants every event: without one, nothing is written."""
    return services.webhook_endpoint_create(organization=org, url="https://hooks.example.com/a")


def _events(org=None) -> list[tuple[str, dict]]:
    queryset = WebhookEvent.objects.order_by("occurred_at", "id")
    if org is not None:
        queryset = queryset.filter(organization=org)
    return [(event.type, event.data) for event in queryset]


def _types(org=None) -> list[str]:
    return [kind for kind, _ in _events(org)]


def test_membership_changes_are_member_events(org):
    membership = MembershipFactory(organization=org, role="viewer")
    membership.role = "admin"
    membership.save()
    membership.delete()

    assert _types(org) == ["member.added", "member.role_changed", "member.removed"]
    added, changed, removed = (data for _, data in _events(org))
    assert added["user_id"] == str(membership.user_id) and added["role"] == "viewer"
    assert (changed["previous_role"], changed["role"]) == ("viewer", "admin")
    assert removed["role"] == "admin"


def test_an_org_key_created_and_revoked_are_events_without_the_secret(org):
    created = account_services.api_key_create_for_org(organization=org, name="ci")
    account_services.api_key_revoke(key=created.key)

    assert _types(org) == ["api_key.created", "api_key.revoked"]
    dumped = json.dumps(_events(org))
    assert created.secret not in dumped and created.plain not in dumped
    key = {"api_key_id": str(created.key.pk), "name": "ci", "scope": "org"}
    assert [data for _, data in _events(org)] == [key, {**key, "reason": "revoked"}]


def test_every_api_key_event_names_the_key_the_same_way(org):
    created = account_services.api_key_create_for_org(organization=org, name="deploy bot")
    type(created.key).objects.filter(pk=created.key.pk).update(
        expires_at=timezone.now() + timedelta(days=2)
    )
    api_keys_sweep()
    account_services.api_key_revoke(key=created.key)

    named = {kind: (d["api_key_id"], d["name"], d["scope"]) for kind, d in _events(org)}
    assert set(named) == {"api_key.created", "api_key.expiring", "api_key.revoked"}
    assert set(named.values()) == {(str(created.key.pk), "deploy bot", "org")}


def test_a_key_the_sweep_revokes_at_expiry_is_a_revoked_event_once(org):
    from apps.accounts.models import APIKey

    created = account_services.api_key_create_for_org(organization=org, name="old")
    APIKey.objects.filter(pk=created.key.pk).update(expires_at=timezone.now())
    api_keys_sweep()
    api_keys_sweep()
    account_services.api_key_revoke(key=APIKey.objects.get(pk=created.key.pk))

    revoked = [d for kind, d in _events(org) if kind == "api_key.revoked"]
    assert revoked == [
        {"api_key_id": str(created.key.pk), "name": "old", "scope": "org", "reason": "expired"}
    ]
    assert APIKey.objects.get(pk=created.key.pk).revoked_at is not None


def test_a_key_about_to_expire_is_announced_once_however_often_the_sweep_runs(org):
    created = account_services.api_key_create_for_org(organization=org, name="soon")
    type(created.key).objects.filter(pk=created.key.pk).update(
        expires_at=timezone.now() + timedelta(days=2)
    )
    api_keys_sweep()
    api_keys_sweep()

    assert _types(org).count("api_key.expiring") == 1


def _job(org, kind: str, subject_type: str = "") -> JobRun:
    job = JobRun.objects.create(kind=kind, organization=org, subject_type=subject_type)
    claimed = jobs.job_claim(job_id=job.pk)
    assert claimed is not None
    return claimed


@pytest.mark.parametrize(
    ("kind", "status", "expected"),
    [
        ("cluster_action", "succeeded", ["cluster_run.started", "cluster_run.succeeded"]),
        ("cluster_action", "failed", ["cluster_run.started", "cluster_run.failed"]),
        ("cluster_action", "canceled", ["cluster_run.started", "cluster_run.canceled"]),
        ("bootstrap_bastion", "succeeded", ["bastion_bootstrap.succeeded"]),
        ("bootstrap_bastion", "failed", ["bastion_bootstrap.failed"]),
        ("dns_reconcile", "failed", ["dns_reconcile.failed"]),
        ("dns_reconcile", "succeeded", []),
    ],
)
def test_job_endings_are_events_of_their_kind(org, kind, status, expected):
    job = _job(org, kind)
    jobs.job_finish(job=job, status=status, error="CANARY-error-text")

    assert _types(org) == expected
    assert "CANARY" not in json.dumps(_events(org))


def test_a_reconcile_that_found_conflicts_is_a_record_conflict_event(org):
    job = _job(org, "dns_reconcile", subject_type="domain")
    jobs.job_finish(job=job, status="succeeded", result={"conflict": 2, "create": 1})
    assert _events(org) == [
        (
            "dns_record.conflict",
            {"job_id": str(job.pk), "kind": "dns_reconcile", "status": "succeeded", "conflicts": 2},
        )
    ]


def test_a_canceled_queued_cluster_run_is_an_event(org):
    job = JobRun.objects.create(kind="cluster_action", organization=org)
    jobs.job_request_cancel(job=job)
    assert _types(org) == ["cluster_run.canceled"]


@pytest.mark.parametrize(
    ("status", "expected"), [("succeeded", "backup.succeeded"), ("failed", "backup.failed")]
)
def test_backups_are_platform_events_for_the_platform_s_endpoints_only(db, status, expected):
    platform, _ = services.webhook_endpoint_create(
        organization=None, url="https://hooks.example.com/platform"
    )
    job = _job(None, "backup")
    jobs.job_finish(job=job, status=status)

    [event] = WebhookEvent.objects.all()
    assert (event.type, event.organization_id) == (expected, None)
    # The organization's endpoint (the autouse one, wanting every event) gets nothing.
    assert [d.endpoint_id for d in event.deliveries.all()] == [platform.pk]
    assert event.deliveries.get().organization_id is None


def test_a_platform_event_nobody_listens_to_writes_nothing(db):
    jobs.job_finish(job=_job(None, "backup"), status="succeeded")
    assert not WebhookEvent.objects.exists()


def test_a_broken_platform_audit_chain_goes_to_the_platform_s_endpoints(org):
    from apps.audit.models import PLATFORM_CHAIN
    from apps.audit.services import audit_seal

    platform, _ = services.webhook_endpoint_create(
        organization=None, url="https://hooks.example.com/platform"
    )
    entries = [
        audit_record(event=audit_events.AUTH_SIGN_IN, object_type="accounts.user", object_id=str(i))
        for i in range(3)
    ]
    audit_seal(chain=PLATFORM_CHAIN)
    AuditEntry.objects.filter(pk=entries[1].pk).update(actor_label="someone else")

    audit_verify(platform_only=True)

    [event] = WebhookEvent.objects.filter(type="audit_chain.verification_failed")
    assert event.organization_id is None and event.data["chain"] == PLATFORM_CHAIN
    assert [d.endpoint_id for d in event.deliveries.all()] == [platform.pk]


def test_a_host_key_reset_and_a_host_key_mismatch_are_host_key_events(org):
    server = ServerFactory(organization=org, ssh_host_key="AAAA", ssh_host_key_algo="ssh-ed25519")
    server_reset_host_key(server=server)
    event_publish("ssh.host_key_mismatch", server=server, pinned="SHA256:a", offered="SHA256:b")

    assert _types(org) == ["server.host_key_changed", "server.host_key_changed"]
    reset, mismatch = (data for _, data in _events(org))
    assert reset == {"server_id": str(server.pk), "reason": "reset"}
    assert mismatch["reason"] == "mismatch"
    assert mismatch["offered_fingerprint"] == "SHA256:b"


def test_a_broken_audit_chain_is_an_event_of_its_organization(org):
    from apps.audit.services import audit_seal, chain_name

    entries = [
        audit_record(
            event=audit_events.RESOURCE_UPDATE,
            organization_id=org.pk,
            object_type="clusters.label",
            object_id=str(i),
        )
        for i in range(3)
    ]
    audit_seal(chain=chain_name(org.pk))
    AuditEntry.objects.filter(pk=entries[1].pk).update(actor_label="someone else")

    audit_verify(organization_id=org.pk)

    [(kind, data)] = _events(org)
    assert kind == "audit_chain.verification_failed"
    assert data["chain"] == chain_name(org.pk)
    assert "hash" in data["reason"]


def test_nothing_is_written_for_an_organization_nobody_listens_to(other_org):
    MembershipFactory(organization=other_org)
    assert not WebhookEvent.objects.filter(organization=other_org).exists()


def test_every_catalogue_type_but_the_test_event_is_covered_above():
    from apps.webhooks.catalogue import EVENT_TYPES

    source = open(__file__).read()  # noqa: PTH123, SIM115 - this very file
    missing = [kind for kind in EVENT_TYPES if f'"{kind}"' not in source]
    assert missing == []
    assert services.MAX_ATTEMPTS == 10


def test_a_fact_reported_again_is_announced_once(org):
    from apps.audit.services import audit_seal, chain_name

    server = ServerFactory(organization=org)
    for _ in range(3):
        event_publish("ssh.host_key_mismatch", server=server, pinned="SHA256:a", offered="SHA256:b")
    event_publish("ssh.host_key_mismatch", server=server, pinned="SHA256:a", offered="SHA256:c")
    domain_id = uuid.uuid4()
    for conflicts in (2, 2, 3):  # three reconciles of one domain
        job = _job(org, "dns_reconcile", subject_type="domain")
        job.subject_id = domain_id
        jobs.job_finish(job=job, status="succeeded", result={"conflict": conflicts})
    run = _job(org, "cluster_action")
    event_publish("job.started", job=run)  # claimed again after its lease ran out
    audit_record(
        event=audit_events.RESOURCE_UPDATE,
        organization_id=org.pk,
        object_type="clusters.label",
        object_id="1",
    )
    audit_seal(chain=chain_name(org.pk))
    AuditEntry.objects.update(actor_label="someone else")
    for _ in range(3):
        audit_verify(organization_id=org.pk)

    assert sorted(_types(org)) == [
        "audit_chain.verification_failed",
        "cluster_run.started",
        "dns_record.conflict",
        "dns_record.conflict",
        "server.host_key_changed",
        "server.host_key_changed",
    ]


def test_every_expiring_org_key_is_announced_in_batches(org, settings, monkeypatch):
    from apps.accounts.models import APIKey

    settings.MAINTENANCE_DELETE_BATCH_SIZE = 2  # 5 keys in 3 batches, as 5,000 in 3 of 2,000
    for index in range(5):
        account_services.api_key_create_for_org(organization=org, name=f"k{index}")
    APIKey.objects.filter(organization=org).update(expires_at=timezone.now() + timedelta(days=2))

    from apps.core import events as core_events

    batches: list[int] = []

    def count(name, facts):
        if name == "api_key.expiring":
            batches.append(len(facts["keys"]))

    monkeypatch.setattr(core_events, "_listeners", [*core_events._listeners, count])
    api_keys_sweep()
    api_keys_sweep()

    assert batches == [2, 2, 1, 2, 2, 1]
    assert sorted(d["name"] for t, d in _events(org) if t == "api_key.expiring") == [
        "k0",
        "k1",
        "k2",
        "k3",
        "k4",
    ]

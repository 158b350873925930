"""Audit entries (one hash chain per organization plus one for the platform) and idempotency
records. Entries are append-only: nothing in the code updates or deletes one except retention
(`audit_prune`), and `manage.py audit verify` finds any row changed behind its back."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models.fields.json import KeyTextTransform

from apps.core.fields import EncryptedTextField

PLATFORM_CHAIN = "platform"


class AuditChainHead(models.Model):
    """The last sealed link of one chain: its sequence number and hash. Only the sealer
    (`audit_seal`, after the writing transaction commits) locks this row, so concurrent sealers
    of one chain queue up instead of forking it while requests never wait on it; verify
    compares it with the last sealed entry, so cutting entries off the end is noticed too.
    """

    chain = models.CharField(primary_key=True, max_length=64)
    seq = models.BigIntegerField(default=0)
    last_hash = models.CharField(max_length=64, blank=True, default="")
    # Retention removes old entries from the start of a chain; verification starts here then.
    base_seq = models.BigIntegerField(default=0)
    base_hash = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["chain"]

    def __str__(self) -> str:
        return f"{self.chain} @ {self.seq}"


class AuditEntry(models.Model):
    """One audited event: who (actor), where (org, IP, user agent, request id), what (event,
    object, before/after diff with secrets redacted), linked to the previous entry of its chain
    by `prev_hash` and sealed by `hash` (SHA-256 over the canonical form, apps.audit.chain).

    A request inserts its entries unsealed (`seq` null, `hash` empty) with a keyed `mac` over
    their contents; the sealer gives them their place in the chain moments later, and refuses an
    unsealed row whose `mac` does not verify (one that did not come through `audit_record`).

    `organization_id` is a plain UUID, not a foreign key: entries outlive the organization they
    describe (its deletion is itself an entry on the platform chain).
    """

    class ActorType(models.TextChoices):
        USER = "user"
        ORG_KEY = "org_key"
        JOB = "job"
        SYSTEM = "system"
        ANONYMOUS = "anonymous"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    chain = models.CharField(max_length=64)
    # Null until sealed (apps.audit.services.audit_seal).
    seq = models.BigIntegerField(null=True, blank=True)
    occurred_at = models.DateTimeField(db_index=True)
    organization_id = models.UUIDField(null=True, blank=True)
    event = models.CharField(max_length=64, db_index=True)
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True, default="")
    actor_label = models.CharField(max_length=255, blank=True, default="")
    ip = models.CharField(max_length=64, blank=True, default="")
    user_agent = models.CharField(max_length=512, blank=True, default="")
    request_id = models.CharField(max_length=128, blank=True, default="")
    object_type = models.CharField(max_length=100, blank=True, default="")
    object_id = models.CharField(max_length=64, blank=True, default="")
    object_repr = models.CharField(max_length=255, blank=True, default="")
    changes = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64, blank=True, default="")
    hash = models.CharField(max_length=64, blank=True, default="")
    mac = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["chain", "seq"]
        verbose_name_plural = "audit entries"
        constraints = [
            models.UniqueConstraint(
                fields=["chain", "seq"], name="%(app_label)s_%(class)s_unique_chain_seq"
            ),
        ]
        indexes = [
            models.Index(fields=["organization_id", "-seq"], name="audit_entry_org_seq"),
            models.Index(fields=["chain", "occurred_at"], name="audit_entry_chain_time"),
            # The list's order (newest first), which holds for unsealed entries too.
            models.Index(fields=["organization_id", "-occurred_at"], name="audit_entry_org_time"),
            # An object's history page (apps.audit.selectors.object_history): its own entries...
            models.Index(
                fields=["organization_id", "object_type", "object_id", "-occurred_at"],
                name="audit_entry_org_object_time",
            ),
            # ...and the runs launched for it, found by the subject the launch names (partial: only
            # launches), in the page's order.
            models.Index(
                KeyTextTransform("subject_id", "metadata"),
                models.F("organization_id"),
                models.F("occurred_at").desc(),
                condition=models.Q(event="job.launch"),
                name="audit_entry_launch_subject",
            ),
            # What the sealer looks for: small, as entries stay unsealed only moments.
            models.Index(
                fields=["chain", "occurred_at"],
                condition=models.Q(seq__isnull=True),
                name="audit_entry_unsealed",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.chain}#{self.seq} {self.event}"


class IdempotencyRecord(models.Model):
    """The answer to a POST made with an `Idempotency-Key`, written in the same transaction as the
    write it answers, so a repeat by the same principal gets it back. While the first request
    runs, the key is held by a transaction-scoped advisory lock, not by a row
    (apps.audit.idempotency); rows with a null `completed_at` were reservations of an earlier
    version and hold nothing.

    Creates that answer a secret (`Cache-Control: no-store`) are stored encrypted under the
    platform data key (`body_secret`), never in `body`; other `no-store` answers (secret reads)
    are never stored.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # sha256 of the principal (user or org key, and the organization the request resolved to)
    # and the key.
    scope = models.CharField(max_length=64, unique=True)
    request_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    body = models.TextField(blank=True, default="")
    body_secret = EncryptedTextField(blank=True, default="")
    # The principal's role in the organization when the answer was stored ("" outside one): an
    # answer that carries secrets that role could read is replayed only to a role that still can.
    role = models.CharField(max_length=32, blank=True, default="")
    # The organization the request ran in (null outside one): deleting it deletes the answers
    # stored for it, which may hold its objects' ids and secrets.
    organization = models.ForeignKey(
        "orgs.Organization", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"idempotency {self.scope[:12]}"


class AuditVerification(models.Model):
    """The outcome of one full verification of every chain (the daily `audit-verify` schedule,
    or `manage.py audit verify` without filters). The newest row is the metric
    `autoglue_audit_chains_broken` and the alert on it; older rows are the record."""

    checked_at = models.DateTimeField(db_index=True)
    chains = models.PositiveIntegerField()
    broken_chains = models.PositiveIntegerField()

    class Meta:
        ordering = ["-checked_at"]

    def __str__(self) -> str:
        return f"{self.broken_chains}/{self.chains} broken @ {self.checked_at:%Y-%m-%d %H:%M}"

from django.apps import AppConfig


class AuditConfig(AppConfig):
    """The append-only, hash-chained audit log, idempotency keys for POSTs, and the model
    signals that turn every change to a tenant resource into an audit entry (docs/audit.md)."""

    name = "apps.audit"
    label = "audit"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.audit import signals
        from apps.audit.idempotency import idempotency_guard
        from apps.core.api.transactions import register_write_guard

        signals.connect()
        register_write_guard(idempotency_guard)

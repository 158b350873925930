from django.apps import AppConfig


class DnsConfig(AppConfig):
    """DNS domains bound to Route 53 hosted zones, their record sets, and the reconciler."""

    name = "apps.dns"
    label = "dns"
    verbose_name = "DNS"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.jobs import registry

        for name in ("dns_reconcile", "dns_purge"):
            registry.register(
                registry.JobKind(
                    name=name,
                    handler=f"apps.dns.jobs.{name}",
                    queue=registry.QUEUE_DEFAULT,
                    timeout_setting="DNS_RECONCILE_TIMEOUT_SECONDS",
                    # A reconcile reads the zone afresh and converges: running it again after a
                    # lost worker is safe.
                    idempotent=True,
                    max_attempts=3,
                    on_failure="apps.dns.services.dns_job_failed",
                    # The "dns-reconcile" tick only queues reconciles: theirs is its success.
                    schedule="dns-reconcile" if name == "dns_reconcile" else "",
                )
            )

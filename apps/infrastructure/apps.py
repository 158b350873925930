from django.apps import AppConfig


class InfrastructureConfig(AppConfig):
    """SSH keys, servers, cloud credentials and load balancers of an organization."""

    name = "apps.infrastructure"
    label = "infrastructure"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.jobs import registry

        registry.register(
            registry.JobKind(
                name="bootstrap_bastion",
                handler="apps.infrastructure.bootstrap.bootstrap_bastion",
                queue=registry.QUEUE_SSH,
                timeout_setting="BASTION_BOOTSTRAP_TIMEOUT_SECONDS",
                # The script is idempotent: after a lost worker it simply runs again.
                idempotent=True,
                max_attempts=2,
                on_failure="apps.infrastructure.bootstrap.bootstrap_failed",
            )
        )
        registry.register(
            registry.JobKind(
                name="bastion_sweep",
                handler="apps.infrastructure.bootstrap.bastion_sweep_job",
                queue=registry.QUEUE_MAINTENANCE,
                idempotent=True,
                max_attempts=2,
                admin_enqueue=True,
            )
        )

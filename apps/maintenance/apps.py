from django.apps import AppConfig


class MaintenanceConfig(AppConfig):
    """Backups to S3 and their restore, the sweepers, and the periodic schedules that start
    them (docs/maintenance.md)."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "apps.maintenance"
    label = "maintenance"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from apps.jobs import registry
        from apps.maintenance.schedules import apply_after_migrate
        from apps.maintenance.services.schedule import SCHEDULES

        # Interval settings given in the environment win over the stored schedule at every
        # migrate (apps/maintenance/schedules.py).
        post_migrate.connect(apply_after_migrate, sender=self)

        registry.register(
            registry.JobKind(
                name="backup",
                handler="apps.maintenance.jobs.backup_job",
                timeout_setting="BACKUP_TIMEOUT_SECONDS",
                # A lost worker's backup is aborted (its multipart upload expires unfinished);
                # running it again is harmless, it makes a new object.
                idempotent=True,
                max_attempts=2,
                queue=registry.QUEUE_MAINTENANCE,
                admin_enqueue=True,
                schedule=SCHEDULES["backup"],
            )
        )
        # Sweeps only delete what is already past its time: running one again is harmless.
        for name, handler in (
            ("api_key_sweep", "api_key_sweep_job"),
            ("refresh_token_purge", "refresh_token_purge_job"),
            ("job_retention", "job_retention_job"),
            ("vacuum", "vacuum_job"),
        ):
            registry.register(
                registry.JobKind(
                    name=name,
                    handler=f"apps.maintenance.jobs.{handler}",
                    idempotent=True,
                    max_attempts=2,
                    queue=registry.QUEUE_MAINTENANCE,
                    admin_enqueue=True,
                    schedule=SCHEDULES[name],
                )
            )

from django.apps import AppConfig


class JobsConfig(AppConfig):
    """Durable job runs, their append-only logs (with a live stream), and the one way every
    background job in Autoglue is enqueued, claimed, logged, reaped and finished."""

    name = "apps.jobs"
    label = "jobs"
    default_auto_field = "django.db.models.BigAutoField"

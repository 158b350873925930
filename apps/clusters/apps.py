from django.apps import AppConfig


class ClustersConfig(AppConfig):
    """Labels, annotations, taints, node pools, clusters, the action catalogue and cluster runs."""

    name = "apps.clusters"
    label = "clusters"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.jobs import registry

        registry.register(
            registry.JobKind(
                name="cluster_action",
                handler="apps.clusters.runs.cluster_action",
                queue=registry.QUEUE_SSH,
                timeout_setting="CLUSTER_ACTION_TIMEOUT_SECONDS",
                # Never run twice behind the operator's back: a lost run is failed, not retried.
                idempotent=False,
                max_attempts=1,
                retryable=False,
                on_failure="apps.clusters.runs.cluster_action_failed",
            )
        )

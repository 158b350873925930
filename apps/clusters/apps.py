from django.apps import AppConfig


class ClustersConfig(AppConfig):
    """Labels, annotations, taints, node pools, clusters, the action catalogue and cluster runs."""

    name = "apps.clusters"
    label = "clusters"
    default_auto_field = "django.db.models.BigAutoField"

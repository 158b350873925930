"""List filters (query parameters of the contract)."""

import django_filters

from apps.clusters.models import Annotation, Cluster, Label, NodePool, Taint


class _KeyValueFilterSet(django_filters.FilterSet):
    key = django_filters.CharFilter(field_name="key")
    value = django_filters.CharFilter(field_name="value")
    # q: the key contains this text, case-insensitively.
    q = django_filters.CharFilter(field_name="key", lookup_expr="icontains")


class LabelFilterSet(_KeyValueFilterSet):
    class Meta:
        model = Label
        fields = ["key", "value", "q"]


class AnnotationFilterSet(_KeyValueFilterSet):
    class Meta:
        model = Annotation
        fields = ["key", "value", "q"]


class TaintFilterSet(_KeyValueFilterSet):
    class Meta:
        model = Taint
        fields = ["key", "value", "q"]


class NodePoolFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains")

    class Meta:
        model = NodePool
        fields = ["q"]


class ClusterFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains")

    class Meta:
        model = Cluster
        fields = ["q"]

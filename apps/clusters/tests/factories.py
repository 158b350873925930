"""Factories for the clusters app. Secrets are canaries (`CANARY-...`)."""

import factory

from apps.clusters.models import (
    Action,
    Annotation,
    Cluster,
    ClusterMetadata,
    ClusterRun,
    Label,
    NodePool,
    Taint,
)
from apps.orgs.tests.factories import OrganizationFactory


class LabelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Label

    organization = factory.SubFactory(OrganizationFactory)
    key = factory.Sequence(lambda n: f"example.com/tier-{n}")
    value = "backend"


class AnnotationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Annotation

    organization = factory.SubFactory(OrganizationFactory)
    key = factory.Sequence(lambda n: f"example.com/note-{n}")
    value = "free text, with spaces"


class TaintFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Taint

    organization = factory.SubFactory(OrganizationFactory)
    key = factory.Sequence(lambda n: f"dedicated-{n}")
    value = "gpu"
    effect = Taint.Effect.NO_SCHEDULE


class NodePoolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = NodePool

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"pool-{n}")
    role = NodePool.Role.WORKER


class ClusterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Cluster

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"cluster-{n}")
    provider = "hetzner"
    region = "fsn1"
    docker_image = "ghcr.io/glueops/cluster-tools"
    docker_tag = "v1.0.0"
    random_token = factory.Sequence(lambda n: f"CANARY-TOKEN-{n}")
    certificate_key = factory.Sequence(lambda n: f"CANARY-CERTKEY-{n}")


class ClusterMetadataFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ClusterMetadata

    cluster = factory.SubFactory(ClusterFactory)
    organization = factory.SelfAttribute("cluster.organization")
    key = factory.Sequence(lambda n: f"key-{n}")
    value = "value"


class ActionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Action

    label = factory.Sequence(lambda n: f"Action {n}")
    description = "does a thing"
    make_target = factory.Sequence(lambda n: f"target-{n}")


class ClusterRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ClusterRun

    cluster = factory.SubFactory(ClusterFactory)
    organization = factory.SelfAttribute("cluster.organization")
    action_ref = factory.SubFactory(ActionFactory)
    action = factory.SelfAttribute("action_ref.make_target")
    status = ClusterRun.Status.QUEUED

"""Factories for the infrastructure app. Secrets are canaries (`CANARY-...`) so tests can grep
responses, logs and admin pages for them."""

import factory

from apps.infrastructure import registry
from apps.infrastructure.keygen import generate_key_pair
from apps.infrastructure.models import Credential, LoadBalancer, Server, SSHKey
from apps.orgs.tests.factories import OrganizationFactory


class SSHKeyFactory(factory.django.DjangoModelFactory):
    """An Ed25519 key (fast to generate) with real key material."""

    class Meta:
        model = SSHKey

    class Params:
        material = factory.LazyFunction(lambda: generate_key_pair(key_type="ed25519"))

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"key-{n}")
    key_type = SSHKey.KeyType.ED25519
    public_key = factory.LazyAttribute(lambda o: o.material.public_key)
    fingerprint = factory.LazyAttribute(lambda o: o.material.fingerprint)
    private_key = factory.LazyAttribute(lambda o: o.material.private_key)


class ServerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Server

    organization = factory.SubFactory(OrganizationFactory)
    ssh_key = factory.SubFactory(
        SSHKeyFactory, organization=factory.SelfAttribute("..organization")
    )
    hostname = factory.Sequence(lambda n: f"node-{n}")
    private_ip_address = factory.Sequence(lambda n: f"10.0.{n // 250}.{n % 250 + 1}")
    ssh_user = "ubuntu"
    role = Server.Role.WORKER
    status = Server.Status.PENDING


class CredentialFactory(factory.django.DjangoModelFactory):
    """An AWS access key scoped to one S3 bucket, with a canary secret."""

    class Meta:
        model = Credential

    organization = factory.SubFactory(OrganizationFactory)
    provider = "aws"
    kind = "aws_access_key"
    schema_version = 1
    name = factory.Sequence(lambda n: f"aws-{n}")
    # A distinct resource scope per credential, so any number fit in one organization.
    scope_kind = "resource"
    scope_version = 1
    scope = factory.Sequence(lambda n: {"arn": f"arn:aws:s3:::bucket-{n}"})
    scope_fingerprint = factory.LazyAttribute(lambda o: registry.scope_fingerprint(o.scope))
    secret = factory.LazyAttribute(
        lambda o: registry.canonical_json(
            {"access_key_id": "AKIACANARY0000000000", "secret_access_key": f"CANARY-{o.name}"}
        )
    )


class LoadBalancerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = LoadBalancer

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"lb-{n}")
    kind = LoadBalancer.Kind.PUBLIC
    public_ip_address = "203.0.113.10"
    private_ip_address = "10.1.0.10"

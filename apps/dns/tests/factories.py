"""Factories for the dns app's models."""

import factory

from apps.dns.models import Domain, RecordSet
from apps.infrastructure.tests.factories import CredentialFactory
from apps.orgs.tests.factories import OrganizationFactory


class DomainFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Domain

    organization = factory.SubFactory(OrganizationFactory)
    domain_name = factory.Sequence(lambda n: f"zone{n}.example.com")
    zone_id = factory.Sequence(lambda n: f"Z{n:012d}")
    credential = factory.SubFactory(
        CredentialFactory, organization=factory.SelfAttribute("..organization")
    )


class RecordSetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RecordSet

    domain = factory.SubFactory(DomainFactory)
    organization = factory.SelfAttribute("domain.organization")
    name = factory.Sequence(lambda n: f"api{n}")
    type = RecordSet.Type.A
    ttl = 300
    values = factory.LazyFunction(lambda: ["203.0.113.20"])
    owner = RecordSet.Owner.AUTOGLUE

import factory

from apps.groupsync.models import GroupRoleMapping, GroupSyncSettings
from apps.groupsync.tests.google_standin import ADMIN, CLIENT_EMAIL, service_account_json
from apps.orgs.tests.factories import OrganizationFactory


class GroupSyncSettingsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GroupSyncSettings

    organization = factory.SubFactory(OrganizationFactory)
    enabled = True
    mode = GroupSyncSettings.Mode.ADDITIVE
    service_account_key = factory.LazyFunction(service_account_json)
    service_account_email = CLIENT_EMAIL
    delegated_subject = ADMIN


class GroupRoleMappingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GroupRoleMapping

    organization = factory.SubFactory(OrganizationFactory)
    group_email = factory.Sequence(lambda n: f"group{n}@acme.example")
    role = "member"

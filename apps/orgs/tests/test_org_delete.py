"""Deleting an organization takes everything it owns with it, whatever refers to what inside it."""

import pytest

from apps.clusters.models import (
    Cluster,
    ClusterMetadata,
    ClusterNodePool,
    NodePool,
    NodePoolLabel,
    NodePoolServer,
)
from apps.clusters.tests.factories import (
    ClusterFactory,
    ClusterMetadataFactory,
    LabelFactory,
    NodePoolFactory,
)
from apps.dns.models import Domain, RecordSet
from apps.dns.tests.factories import DomainFactory, RecordSetFactory
from apps.infrastructure.models import Credential, LoadBalancer, Server, SSHKey
from apps.infrastructure.tests.factories import (
    CredentialFactory,
    LoadBalancerFactory,
    ServerFactory,
    SSHKeyFactory,
)
from apps.orgs.models import Organization

pytestmark = pytest.mark.django_db

OWNED = [
    SSHKey,
    Server,
    Credential,
    LoadBalancer,
    Domain,
    RecordSet,
    NodePool,
    NodePoolServer,
    NodePoolLabel,
    Cluster,
    ClusterNodePool,
    ClusterMetadata,
]


def _build_a_full_inventory(org):
    key = SSHKeyFactory(organization=org)
    worker = ServerFactory(organization=org, ssh_key=key)
    bastion = ServerFactory(
        organization=org, ssh_key=key, role=Server.Role.BASTION, public_ip_address="198.51.100.7"
    )
    credential = CredentialFactory(organization=org)
    domain = DomainFactory(organization=org, credential=credential)
    record_set = RecordSetFactory(domain=domain)
    lb = LoadBalancerFactory(organization=org)
    pool = NodePoolFactory(organization=org)
    NodePoolServer.objects.create(organization=org, node_pool=pool, server=worker)
    NodePoolLabel.objects.create(
        organization=org, node_pool=pool, label=LabelFactory(organization=org)
    )
    cluster = ClusterFactory(
        organization=org,
        bastion_server=bastion,
        captain_domain=domain,
        control_plane_record_set=record_set,
        apps_load_balancer=lb,
        glueops_load_balancer=lb,
    )
    ClusterNodePool.objects.create(organization=org, cluster=cluster, node_pool=pool)
    ClusterMetadataFactory(cluster=cluster)


def test_an_org_with_servers_domains_pools_and_clusters_can_be_deleted_by_its_owner(
    client_for, owner, org, other_org
):
    _build_a_full_inventory(org)
    _build_a_full_inventory(other_org)

    response = client_for(owner).delete(f"/api/v1/orgs/{org.pk}")

    assert response.status_code == 204
    assert not Organization.objects.filter(pk=org.pk).exists()
    for model in OWNED:
        assert not model.objects.filter(organization_id=org.pk).exists(), model.__name__
        # The other organization's inventory is untouched.
        assert model.objects.filter(organization_id=other_org.pk).exists(), model.__name__

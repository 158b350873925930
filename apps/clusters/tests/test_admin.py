"""Clusters and node pools in the console: writes go through the services, so every write the
API refuses is refused here too, with a form error and nothing saved."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import LogEntry

from apps.clusters.models import Cluster, ClusterRun, NodePoolServer
from apps.clusters.tests.factories import ActionFactory, ClusterFactory, NodePoolFactory
from apps.infrastructure.models import Server
from apps.infrastructure.tests.factories import ServerFactory
from apps.orgs.tests.admin_support import (
    add_inline_row,
    console_for,
    form_data,
    form_errors,
    staff_of,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(org):
    return console_for(staff_of(org, "owner", "alice@acme.example"))


def _pool_page(client, pool):
    return client.get(f"/admin/clusters/nodepool/{pool.pk}/change/")


def _servers_prefix(page) -> str:
    for inline in page.context["inline_admin_formsets"]:
        if inline.formset.model is NodePoolServer:
            return inline.formset.prefix
    raise AssertionError("no servers inline")


def test_another_organizations_server_cannot_join_a_node_pool_through_the_inline(
    alice, org, other_org
):
    pool = NodePoolFactory(organization=org)
    theirs = ServerFactory(organization=other_org)
    page = _pool_page(alice, pool)
    data = form_data(page)
    add_inline_row(data, _servers_prefix(page), server=theirs.pk)

    response = alice.post(f"/admin/clusters/nodepool/{pool.pk}/change/", data)

    assert "server" in form_errors(response)
    assert not NodePoolServer.objects.filter(node_pool=pool).exists()


def test_a_bastion_cannot_join_a_node_pool_through_the_inline(alice, org):
    pool = NodePoolFactory(organization=org)
    bastion = ServerFactory(
        organization=org, role=Server.Role.BASTION, public_ip_address="198.51.100.9"
    )
    page = _pool_page(alice, pool)
    data = form_data(page)
    add_inline_row(data, _servers_prefix(page), server=bastion.pk)

    response = alice.post(f"/admin/clusters/nodepool/{pool.pk}/change/", data)

    assert "server" in form_errors(response)
    assert not NodePoolServer.objects.filter(node_pool=pool).exists()


def test_a_server_joins_a_node_pool_through_the_inline_and_the_attach_service(alice, org):
    pool = NodePoolFactory(organization=org)
    worker = ServerFactory(organization=org)
    page = _pool_page(alice, pool)
    data = form_data(page)
    add_inline_row(data, _servers_prefix(page), server=worker.pk)

    response = alice.post(f"/admin/clusters/nodepool/{pool.pk}/change/", data)

    assert response.status_code == 302, form_errors(response)
    row = NodePoolServer.objects.get(node_pool=pool)
    assert (row.server_id, row.organization_id) == (worker.pk, org.pk)


def test_a_clusters_bastion_cannot_be_a_master_server(alice, org):
    cluster = ClusterFactory(organization=org, status="ready")
    master = ServerFactory(organization=org, role=Server.Role.MASTER)
    data = form_data(alice.get(f"/admin/clusters/cluster/{cluster.pk}/change/"))
    data["bastion_server"] = str(master.pk)

    response = alice.post(f"/admin/clusters/cluster/{cluster.pk}/change/", data)

    assert "bastion_server" in response.context["adminform"].form.errors
    cluster.refresh_from_db()
    assert (cluster.bastion_server_id, cluster.status) == (None, "ready")


def test_a_clusters_bastion_is_attached_through_the_service_and_resets_its_status(alice, org):
    cluster = ClusterFactory(organization=org, status="ready")
    bastion = ServerFactory(
        organization=org, role=Server.Role.BASTION, public_ip_address="198.51.100.9"
    )
    data = form_data(alice.get(f"/admin/clusters/cluster/{cluster.pk}/change/"))
    data["bastion_server"] = str(bastion.pk)

    response = alice.post(f"/admin/clusters/cluster/{cluster.pk}/change/", data)

    assert response.status_code == 302, form_errors(response)
    cluster.refresh_from_db()
    assert (cluster.bastion_server_id, cluster.status) == (bastion.pk, "pre_pending")


def test_a_cluster_cannot_move_to_another_organization(alice, org, other_org):
    staff_of(other_org, "owner", "alice2@acme.example")
    cluster = ClusterFactory(organization=org)
    data = form_data(alice.get(f"/admin/clusters/cluster/{cluster.pk}/change/"))
    data["organization"] = str(other_org.pk)

    response = alice.post(f"/admin/clusters/cluster/{cluster.pk}/change/", data)

    assert "organization" in form_errors(response)
    cluster.refresh_from_db()
    assert cluster.organization_id == org.pk


def test_a_new_cluster_gets_generated_join_secrets_whatever_is_posted(alice, org):
    response = alice.post(
        "/admin/clusters/cluster/add/",
        {
            "organization": str(org.pk),
            "name": "prod",
            "provider": "hetzner",
            "region": "fsn1",
            "docker_image": "",
            "docker_tag": "",
            "random_token": "",
            "certificate_key": "",
            "clusternodepool-TOTAL_FORMS": "0",
            "clusternodepool-INITIAL_FORMS": "0",
            "metadata-TOTAL_FORMS": "0",
            "metadata-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302, form_errors(response)
    cluster = Cluster.objects.get(name="prod")
    assert cluster.organization_id == org.pk
    assert len(cluster.random_token) == 23 and "." in cluster.random_token
    assert len(cluster.certificate_key) == 64
    page = alice.get(f"/admin/clusters/cluster/{cluster.pk}/change/").content.decode()
    assert cluster.random_token not in page and cluster.certificate_key not in page


def test_a_viewer_sees_a_cluster_but_cannot_change_it(org):
    cluster = ClusterFactory(organization=org, name="prod")
    bob = console_for(staff_of(org, "viewer", "bob@acme.example"))

    page = bob.get(f"/admin/clusters/cluster/{cluster.pk}/change/")
    posted = bob.post(f"/admin/clusters/cluster/{cluster.pk}/change/", {"name": "renamed"})

    assert page.status_code == 200 and "prod" in page.content.decode()
    assert posted.status_code == 403
    cluster.refresh_from_db()
    assert cluster.name == "prod"


def test_running_an_action_on_a_cluster_queues_a_run_and_logs_it(alice, org):
    cluster = ClusterFactory(organization=org)
    action = ActionFactory(label="Ping", make_target="ping")
    chooser = alice.post(
        "/admin/clusters/cluster/",
        {"action": "run_action", "_selected_action": [str(cluster.pk)]},
    )
    assert chooser.status_code == 200 and "Ping" in chooser.content.decode()

    response = alice.post(
        "/admin/clusters/cluster/",
        {
            "action": "run_action",
            "_selected_action": [str(cluster.pk)],
            "apply": "1",
            "catalogue_action": str(action.pk),
        },
    )

    assert response.status_code == 302
    run = ClusterRun.objects.get(cluster=cluster)
    assert (run.action, run.status) == ("ping", "queued")
    followed = alice.get(response["Location"]).content.decode()
    assert f"/admin/jobs/jobrun/{run.job_id}/change/" in followed
    assert LogEntry.objects.filter(object_id=str(cluster.pk), change_message__contains="ping")


def test_canceling_a_queued_run_from_the_console(alice, org):
    cluster = ClusterFactory(organization=org)
    run = ClusterRun.objects.create(
        organization=org, cluster=cluster, action="ping", status=ClusterRun.Status.QUEUED
    )

    response = alice.post(
        "/admin/clusters/clusterrun/",
        {"action": "cancel_runs", "_selected_action": [str(run.pk)]},
    )

    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == ClusterRun.Status.CANCELED
    assert LogEntry.objects.filter(object_id=str(run.pk), change_message__contains="Canceled")


def test_a_viewer_cannot_run_actions_or_download_the_kubeconfig(org):
    cluster = ClusterFactory(organization=org, kubeconfig="CANARY-kubeconfig")
    ActionFactory(label="Ping", make_target="ping")
    bob = console_for(staff_of(org, "viewer", "bob@acme.example"))

    download = bob.post(
        "/admin/clusters/cluster/",
        {"action": "download_kubeconfig", "_selected_action": [str(cluster.pk)]},
    )

    assert download.status_code in (200, 302, 403)
    assert b"CANARY-kubeconfig" not in download.content
    assert not ClusterRun.objects.exists()


def test_downloading_a_kubeconfig_is_role_checked_and_logged(alice, org):
    cluster = ClusterFactory(organization=org, kubeconfig="CANARY-kubeconfig")

    response = alice.post(
        "/admin/clusters/cluster/",
        {"action": "download_kubeconfig", "_selected_action": [str(cluster.pk)]},
    )

    assert response.status_code == 200
    assert response.content == b"CANARY-kubeconfig"
    assert "no-store" in response["Cache-Control"]
    assert LogEntry.objects.filter(object_id=str(cluster.pk), change_message__contains="Revealed")


@pytest.mark.parametrize("path", ["cluster", "nodepool", "clusterrun"])
def test_console_lists_take_the_same_queries_for_many_rows_as_for_one(
    alice, org, path, django_assert_max_num_queries
):
    for n in range(25):
        cluster = ClusterFactory(organization=org, name=f"c{n}")
        NodePoolFactory(organization=org, name=f"p{n}")
        ClusterRun.objects.create(organization=org, cluster=cluster, action="ping", status="failed")

    with django_assert_max_num_queries(12):
        response = alice.get(f"/admin/clusters/{path}/")

    assert response.status_code == 200


def test_a_bad_label_key_is_refused_in_words_about_the_key(alice, org):
    response = alice.post(
        "/admin/clusters/label/add/",
        {"organization": str(org.pk), "key": "not a key!", "value": "x"},
    )

    errors = response.context["adminform"].form.errors
    assert "must consist of alphanumeric characters" in str(errors["key"])
    assert "name" not in str(errors["key"])


def test_deleting_labels_and_taints_in_the_console_detaches_them_from_their_pools_once(alice, org):
    from apps.audit import events
    from apps.audit.models import AuditEntry
    from apps.clusters.models import Label, NodePoolLabel, NodePoolTaint, Taint
    from apps.clusters.tests.factories import LabelFactory, TaintFactory

    pools = NodePoolFactory.create_batch(2, organization=org)
    label, taint, other = (
        LabelFactory(organization=org),
        TaintFactory(organization=org),
        TaintFactory(organization=org),
    )
    for pool in pools:
        NodePoolLabel.objects.create(organization=org, node_pool=pool, label=label)
        NodePoolTaint.objects.create(organization=org, node_pool=pool, taint=taint)
        NodePoolTaint.objects.create(organization=org, node_pool=pool, taint=other)

    alice.post(f"/admin/clusters/label/{label.pk}/delete/", {"post": "yes"})
    alice.post(
        "/admin/clusters/taint/",
        {"action": "delete_selected", "_selected_action": [taint.pk, other.pk], "post": "yes"},
    )

    assert not Label.objects.filter(pk=label.pk).exists()
    assert not Taint.objects.filter(pk__in=[taint.pk, other.pk]).exists()
    assert not NodePoolLabel.objects.exists() and not NodePoolTaint.objects.exists()
    detaches = AuditEntry.objects.filter(event=events.RESOURCE_DETACH)
    assert detaches.filter(object_type="clusters.nodepoollabel").count() == 2
    assert detaches.filter(object_type="clusters.nodepooltaint").count() == 4

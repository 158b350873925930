"""The action catalogue (platform admins) and cluster runs (one active run per cluster)."""

import uuid

import pytest

from apps.accounts.tests.factories import UserFactory
from apps.clusters.models import Action, ClusterRun
from apps.clusters.tests.factories import ActionFactory, ClusterFactory, ClusterRunFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def platform_admin(client_for):
    return client_for(UserFactory(primary_email="root@autoglue.example", is_admin=True))


def test_platform_admin_manages_the_catalogue(platform_admin):
    created = platform_admin.post(
        "/api/v1/admin/actions",
        {"label": " Setup ", "description": "Bootstraps the cluster", "make_target": "setup"},
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert set(body) == {"id", "label", "description", "make_target", "created_at", "updated_at"}
    assert body["label"] == "Setup"
    url = f"/api/v1/admin/actions/{body['id']}"
    assert platform_admin.get(url).json()["make_target"] == "setup"
    patched = platform_admin.patch(url, {"description": "new words"}, format="json")
    assert patched.status_code == 200
    assert patched.json()["description"] == "new words"
    assert platform_admin.patch(url, {"label": "  "}, format="json").status_code == 400
    assert platform_admin.delete(url).status_code == 204
    assert platform_admin.get(url).json()["code"] == "not_found"
    assert platform_admin.get("/api/v1/admin/actions/bad").status_code == 400


def test_catalogue_is_ordered_by_label(platform_admin):
    ActionFactory(label="b")
    ActionFactory(label="a")
    assert [a["label"] for a in platform_admin.get("/api/v1/admin/actions").json()] == ["a", "b"]


@pytest.mark.parametrize("field", ["label", "make_target"])
def test_duplicate_label_or_make_target_is_409_naming_the_field(platform_admin, field):
    existing = ActionFactory(label="Setup", make_target="setup")
    body = {"label": "Other", "description": "d", "make_target": "other"}
    body[field] = getattr(existing, field)
    response = platform_admin.post("/api/v1/admin/actions", body, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "action_exists"
    assert response.json()["message"].startswith(field)
    other = ActionFactory()
    clash = platform_admin.patch(
        f"/api/v1/admin/actions/{other.pk}", {field: getattr(existing, field)}, format="json"
    )
    assert clash.status_code == 409


def test_make_target_must_be_a_plain_target_name(platform_admin):
    response = platform_admin.post(
        "/api/v1/admin/actions",
        {"label": "Evil", "description": "d", "make_target": "setup; rm -rf /"},
        format="json",
    )
    assert response.status_code == 400
    assert "make_target" in response.json()["fields"]


@pytest.mark.parametrize(
    "make_target",
    ["ping; rm -rf /", "-f/etc/passwd", "--eval=x", "a b", "a/b", "$(id)", "x\ny", "x" * 256],
)
def test_a_make_target_that_could_change_the_command_is_400_on_create_and_patch(
    platform_admin, make_target
):
    created = platform_admin.post(
        "/api/v1/admin/actions",
        {"label": "Evil", "description": "d", "make_target": make_target},
        format="json",
    )
    action = ActionFactory(make_target="setup")
    patched = platform_admin.patch(
        f"/api/v1/admin/actions/{action.pk}", {"make_target": make_target}, format="json"
    )

    for response in (created, patched):
        assert response.status_code == 400
        assert response.json()["message"].startswith("make_target: ")
        assert list(response.json()["fields"]) == ["make_target"]
    assert list(Action.objects.values_list("make_target", flat=True)) == ["setup"]


@pytest.mark.parametrize("make_target", ["k3s.install", "_internal", "bootstrap-v2_1"])
def test_plain_make_target_names_are_accepted(platform_admin, make_target):
    response = platform_admin.post(
        "/api/v1/admin/actions",
        {"label": "Ok", "description": "d", "make_target": make_target},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["make_target"] == make_target


def test_catalogue_refuses_non_admins_org_keys_and_anonymous(
    api, org, org_key_client, anon, client_for, owner
):
    action = ActionFactory()
    for client in (api, client_for(owner, org), org_key_client(org)):
        assert client.get("/api/v1/admin/actions").status_code == 403
        assert (
            client.post(
                "/api/v1/admin/actions",
                {"label": "x", "description": "d", "make_target": "x"},
                format="json",
            ).status_code
            == 403
        )
        assert client.delete(f"/api/v1/admin/actions/{action.pk}").status_code == 403
    response = anon.get("/api/v1/admin/actions")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert Action.objects.filter(pk=action.pk).exists()


# --- runs -------------------------------------------------------------------------------------


def test_running_an_action_queues_a_run(api, org):
    cluster = ClusterFactory(organization=org)
    action = ActionFactory(make_target="setup")
    response = api.post(f"/api/v1/clusters/{cluster.pk}/actions/{action.pk}/runs")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "id",
        "organization_id",
        "cluster_id",
        "action",
        "status",
        "error",
        "created_at",
        "updated_at",
    }
    # `finished_at` is omitted until the run finishes, as in the original (never null).
    assert (body["action"], body["status"]) == ("setup", "queued")
    assert body["cluster_id"] == str(cluster.pk)
    assert body["organization_id"] == str(org.pk)

    listed = api.get(f"/api/v1/clusters/{cluster.pk}/runs").json()
    assert [r["id"] for r in listed] == [body["id"]]
    assert api.get(f"/api/v1/clusters/{cluster.pk}/runs/{body['id']}").json() == body


def test_a_second_run_while_one_is_active_is_409_naming_it(api, org):
    cluster = ClusterFactory(organization=org)
    action = ActionFactory()
    for active_status in ("queued", "running"):
        active = ClusterRunFactory(cluster=cluster, status=active_status)
        response = api.post(f"/api/v1/clusters/{cluster.pk}/actions/{action.pk}/runs")
        assert response.status_code == 409
        assert response.json()["code"] == "run_active"
        assert str(active.pk) in response.json()["message"]
        active.status = "succeeded"
        active.save()
    assert api.post(f"/api/v1/clusters/{cluster.pk}/actions/{action.pk}/runs").status_code == 201
    # Another cluster is independent.
    other = ClusterFactory(organization=org)
    assert api.post(f"/api/v1/clusters/{other.pk}/actions/{action.pk}/runs").status_code == 201


def test_runs_are_listed_newest_first(api, org):
    cluster = ClusterFactory(organization=org)
    old = ClusterRunFactory(cluster=cluster, status="failed", error="boom")
    new = ClusterRunFactory(cluster=cluster, status="succeeded")
    assert [r["id"] for r in api.get(f"/api/v1/clusters/{cluster.pk}/runs").json()] == [
        str(new.pk),
        str(old.pk),
    ]


def test_unknown_action_or_malformed_ids(api, org):
    cluster = ClusterFactory(organization=org)
    response = api.post(f"/api/v1/clusters/{cluster.pk}/actions/{uuid.uuid4()}/runs")
    assert response.status_code == 404
    assert response.json()["code"] == "action_not_found"
    assert api.post(f"/api/v1/clusters/{cluster.pk}/actions/bad/runs").status_code == 400
    assert api.get(f"/api/v1/clusters/{cluster.pk}/runs/bad").status_code == 400
    assert (
        api.get(f"/api/v1/clusters/{cluster.pk}/runs/{uuid.uuid4()}").json()["code"] == "not_found"
    )
    assert not ClusterRun.objects.exists()


def test_a_run_of_another_cluster_is_not_found_through_this_one(api, org):
    cluster = ClusterFactory(organization=org)
    run = ClusterRunFactory(cluster=ClusterFactory(organization=org))
    assert api.get(f"/api/v1/clusters/{cluster.pk}/runs/{run.pk}").status_code == 404


def test_another_orgs_cluster_runs_are_404_for_a_user_and_an_org_key(
    api, org, other_org, org_key_client
):
    run = ClusterRunFactory(cluster=ClusterFactory(organization=other_org), status="succeeded")
    action = ActionFactory()
    base = f"/api/v1/clusters/{run.cluster_id}"
    for client in (api, org_key_client(org)):
        assert client.get(f"{base}/runs").status_code == 404
        assert client.get(f"{base}/runs/{run.pk}").status_code == 404
        response = client.post(f"{base}/actions/{action.pk}/runs")
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    assert ClusterRun.objects.count() == 1


def test_org_key_and_members_may_run_but_viewers_may_not(org, org_key_client, client_for, viewer):
    cluster = ClusterFactory(organization=org)
    action = ActionFactory()
    bob = client_for(viewer, org)
    assert bob.post(f"/api/v1/clusters/{cluster.pk}/actions/{action.pk}/runs").status_code == 403
    assert bob.get(f"/api/v1/clusters/{cluster.pk}/runs").status_code == 200
    assert (
        org_key_client(org)
        .post(f"/api/v1/clusters/{cluster.pk}/actions/{action.pk}/runs")
        .status_code
        == 201
    )


def test_deleting_an_action_keeps_its_runs_history(api, org):
    run = ClusterRunFactory(cluster=ClusterFactory(organization=org), status="succeeded")
    run.action_ref.delete()
    body = api.get(f"/api/v1/clusters/{run.cluster_id}/runs/{run.pk}").json()
    assert body["action"] == run.action

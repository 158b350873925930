"""Labels, annotations and taints over the API."""

import pytest

from apps.clusters.models import Label
from apps.clusters.tests.factories import AnnotationFactory, LabelFactory, TaintFactory

pytestmark = pytest.mark.django_db

KINDS = {
    "labels": (LabelFactory, {"key": "example.com/tier", "value": "backend"}),
    "annotations": (AnnotationFactory, {"key": "example.com/owner", "value": "team a, on call"}),
    "taints": (
        TaintFactory,
        {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
    ),
}


@pytest.mark.parametrize("kind", KINDS)
def test_create_then_read_back_with_the_contract_fields(api, org, kind):
    body = KINDS[kind][1]
    response = api.post(f"/api/v1/{kind}", {k: f"  {v}  " for k, v in body.items()}, format="json")
    assert response.status_code == 201, response.json()
    created = response.json()
    expected = {"id", "organization_id", "key", "value", "created_at", "updated_at"}
    if kind == "taints":
        expected.add("effect")
    assert set(created) == expected
    assert created["organization_id"] == str(org.pk)
    for field, value in body.items():
        assert created[field] == value  # trimmed

    got = api.get(f"/api/v1/{kind}/{created['id']}")
    assert got.status_code == 200
    assert got.json() == created


@pytest.mark.parametrize("kind", KINDS)
def test_list_is_newest_first_and_filters_by_key_value_and_q(api, org, kind):
    factory = KINDS[kind][0]
    first = factory(organization=org, key="example.com/alpha", value="one")
    second = factory(organization=org, key="example.com/Beta", value="two")
    factory(organization=org, key="gamma", value="one")

    listed = api.get(f"/api/v1/{kind}").json()
    assert [item["key"] for item in listed] == ["gamma", "example.com/Beta", "example.com/alpha"]
    assert [i["id"] for i in api.get(f"/api/v1/{kind}?key=example.com/alpha").json()] == [
        str(first.pk)
    ]
    assert len(api.get(f"/api/v1/{kind}?value=one").json()) == 2
    assert [i["id"] for i in api.get(f"/api/v1/{kind}?q=beta").json()] == [str(second.pk)]


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [
        ("labels", {"key": "bad key", "value": "x"}, "key"),
        ("labels", {"key": "-starts-with-dash", "value": "x"}, "key"),
        ("labels", {"key": "ok", "value": "not ok!"}, "value"),
        ("labels", {"key": "ok", "value": "x" * 64}, "value"),
        ("labels", {"value": "x"}, "key"),
        ("annotations", {"key": "Upper.Example.com/x", "value": "free"}, "key"),
        ("annotations", {"key": "ok", "value": "x" * (256 * 1024 + 1)}, "value"),
        ("taints", {"key": "ok", "value": "x", "effect": "noschedule"}, "effect"),
        ("taints", {"key": "ok", "value": "x"}, "effect"),
        ("taints", {"key": "a/b/c", "value": "x", "effect": "NoExecute"}, "key"),
        ("taints", {"key": "ok", "value": "bad value", "effect": "NoExecute"}, "value"),
    ],
)
def test_invalid_kubernetes_syntax_is_a_400_naming_the_field(api, kind, body, field):
    response = api.post(f"/api/v1/{kind}", body, format="json")
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "validation_error"
    assert field in error["fields"]
    assert error["message"].startswith(f"{field}:")


def test_label_value_may_be_empty(api):
    response = api.post(
        "/api/v1/labels", {"key": "node.example.com/edge", "value": ""}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["value"] == ""


@pytest.mark.parametrize("kind", KINDS)
def test_patch_changes_only_the_given_fields_and_is_validated(api, org, kind):
    obj = KINDS[kind][0](organization=org, key="before", value="v")
    response = api.patch(f"/api/v1/{kind}/{obj.pk}", {"value": "after"}, format="json")
    assert response.status_code == 200
    assert response.json()["key"] == "before"
    assert response.json()["value"] == "after"
    bad = api.patch(f"/api/v1/{kind}/{obj.pk}", {"key": "no spaces allowed"}, format="json")
    assert bad.status_code == 400


@pytest.mark.parametrize("kind", KINDS)
def test_delete_removes_and_deleting_again_is_an_idempotent_204(api, org, kind):
    obj = KINDS[kind][0](organization=org)
    assert api.delete(f"/api/v1/{kind}/{obj.pk}").status_code == 204
    assert api.delete(f"/api/v1/{kind}/{obj.pk}").status_code == 204
    assert api.delete(f"/api/v1/{kind}/not-a-uuid").status_code == 400
    assert api.get(f"/api/v1/{kind}/{obj.pk}").status_code == 404


@pytest.mark.parametrize(
    ("kind", "code"),
    [("labels", "id_required"), ("annotations", "bad_request"), ("taints", "bad_request")],
)
def test_malformed_id_is_400_with_the_originals_code(api, kind, code):
    response = api.get(f"/api/v1/{kind}/not-a-uuid")
    assert response.status_code == 400
    assert response.json()["code"] == code


@pytest.mark.parametrize("kind", KINDS)
def test_another_orgs_object_is_404_for_a_user_and_for_an_org_key(
    api, org, other_org, org_key_client, kind
):
    theirs = KINDS[kind][0](organization=other_org)
    for client in (api, org_key_client(org)):
        assert client.get(f"/api/v1/{kind}/{theirs.pk}").status_code == 404
        assert (
            client.patch(f"/api/v1/{kind}/{theirs.pk}", {"value": "x"}, format="json").status_code
            == 404
        )
        # Answered like an absent object (idempotent delete); it is not touched.
        assert client.delete(f"/api/v1/{kind}/{theirs.pk}").status_code == 204
        assert client.get(f"/api/v1/{kind}").json() == []
    assert type(theirs).objects.filter(pk=theirs.pk).exists()


def test_org_key_creates_in_its_own_org(org, org_key_client):
    response = org_key_client(org).post(
        "/api/v1/labels", {"key": "tf", "value": "managed"}, format="json"
    )
    assert response.status_code == 201
    assert Label.objects.get(pk=response.json()["id"]).organization_id == org.pk


def test_viewer_reads_but_cannot_write(client_for, viewer, org):
    label = LabelFactory(organization=org)
    bob = client_for(viewer, org)
    assert bob.get("/api/v1/labels").status_code == 200
    response = bob.post("/api/v1/labels", {"key": "a", "value": "b"}, format="json")
    assert response.status_code == 403
    assert bob.delete(f"/api/v1/labels/{label.pk}").status_code == 403


def test_list_query_count_does_not_grow_with_rows(api, org, django_assert_max_num_queries):
    LabelFactory.create_batch(2, organization=org)
    with django_assert_max_num_queries(3):
        assert len(api.get("/api/v1/labels").json()) == 2
    LabelFactory.create_batch(20, organization=org)
    with django_assert_max_num_queries(3):
        assert len(api.get("/api/v1/labels").json()) == 22

"""Free text has bounds on every write route: names, comments, cluster metadata values and action
descriptions past their limit are a 400 naming the field, never stored."""

from __future__ import annotations

import pytest

from apps.accounts.tests.factories import UserFactory
from apps.clusters.models import ClusterMetadata
from apps.clusters.tests.factories import ClusterFactory, ClusterMetadataFactory

pytestmark = pytest.mark.django_db


def _assert_refused(response, field: str) -> None:
    assert response.status_code == 400, response.content[:200]
    assert response.json()["code"] == "validation_error"
    assert field in response.json()["fields"]


def test_a_metadata_value_over_16_kib_is_refused_on_create_and_patch(api, org):
    cluster = ClusterFactory(organization=org)
    url = f"/api/v1/clusters/{cluster.pk}/metadata"
    assert api.post(url, {"key": "ok", "value": "v" * 16384}, format="json").status_code == 201
    _assert_refused(api.post(url, {"key": "big", "value": "v" * 16385}, format="json"), "value")
    item = ClusterMetadataFactory(cluster=cluster)
    patch = api.patch(f"{url}/{item.pk}", {"value": "v" * 16385}, format="json")
    _assert_refused(patch, "value")
    assert not ClusterMetadata.objects.filter(key="big").exists()


def test_an_action_description_over_4096_characters_is_refused(client_for):
    admin = client_for(UserFactory(is_admin=True))
    body = {"label": "Setup", "description": "d" * 4097, "make_target": "setup"}
    _assert_refused(admin.post("/api/v1/admin/actions", body, format="json"), "description")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/clusters", {"name": "n" * 256}, "name"),
        ("/api/v1/node-pools", {"name": "n" * 256, "role": "worker"}, "name"),
        ("/api/v1/load-balancers", {"name": "n" * 256, "kind": "public"}, "name"),
        ("/api/v1/ssh", {"name": "n" * 256}, "name"),
        ("/api/v1/ssh", {"name": "k", "comment": "c" * 256}, "comment"),
        ("/api/v1/orgs", {"name": "n" * 256}, "name"),
        ("/api/v1/me/api-keys", {"name": "n" * 256}, "name"),
    ],
)
def test_names_and_comments_over_their_limit_are_refused(api, path, body, field):
    _assert_refused(api.post(path, body, format="json"), field)


def test_a_display_name_over_255_characters_is_refused(api):
    _assert_refused(
        api.patch("/api/v1/me", {"display_name": "n" * 256}, format="json"), "display_name"
    )

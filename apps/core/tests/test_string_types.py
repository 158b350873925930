"""A JSON number where the contract wants a string is a 400 naming the field, as in the original
(whose Go decoder refuses it), never stored silently as text."""

from __future__ import annotations

import pytest

from apps.clusters.models import Label


@pytest.mark.parametrize("value", [123, 4.5, True, ["a"], {"a": 1}])
def test_a_non_string_label_key_is_refused_naming_the_field(api, value):
    response = api.post("/api/v1/labels", {"key": value, "value": "x"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_error"
    assert "key" in body["fields"]
    assert not Label.objects.exists()


def test_a_number_for_display_name_is_refused_and_the_name_kept(client_for, member):
    client = client_for(member)
    response = client.patch("/api/v1/me", {"display_name": 42}, format="json")
    assert response.status_code == 400
    assert "display_name" in response.json()["fields"]
    member.refresh_from_db()
    assert member.display_name != "42"


def test_a_number_for_a_cluster_name_is_refused(api):
    response = api.post(
        "/api/v1/clusters",
        {"name": 123, "cluster_provider": "aws", "region": "us-east-1"},
        format="json",
    )
    assert response.status_code == 400
    assert "name" in response.json()["fields"]


def test_strings_still_work(api):
    response = api.post("/api/v1/labels", {"key": "env", "value": "42"}, format="json")
    assert response.status_code == 201
    assert response.json()["value"] == "42"

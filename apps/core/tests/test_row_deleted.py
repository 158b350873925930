"""A change that loses the race against a DELETE never brings the row back."""

from __future__ import annotations

import pytest
from django.db import transaction

from apps.clusters.models import Label
from apps.core.models import RowDeleted


def test_saving_a_row_deleted_meanwhile_raises_and_inserts_nothing(org):
    label = Label.objects.create(organization=org, key="env", value="prod")
    Label.objects.filter(pk=label.pk).delete()  # another request's DELETE commits first

    label.value = "staging"
    # Each attempt in its own transaction, as each request is.
    with pytest.raises(RowDeleted), transaction.atomic():
        label.save()
    with pytest.raises(RowDeleted), transaction.atomic():
        label.save(update_fields=["value"])
    assert not Label.objects.filter(pk=label.pk).exists()


def test_a_patch_that_loses_the_race_against_a_delete_is_a_404_not_a_resurrection(
    api, org, monkeypatch
):
    from apps.clusters import views

    label = Label.objects.create(organization=org, key="env", value="prod")
    original = views.LabelViewSet.get_object

    def get_object_then_lose_the_race(self):
        found = original(self)
        Label.objects.filter(pk=found.pk).delete()
        return found

    monkeypatch.setattr(views.LabelViewSet, "get_object", get_object_then_lose_the_race)
    response = api.patch(f"/api/v1/labels/{label.pk}", {"value": "x"}, format="json")
    # Before: 200, and the deleted label was inserted again (with a `create` audit entry).
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_new_rows_and_ordinary_updates_still_save(org):
    label = Label(organization=org, key="env", value="prod")
    label.save()
    label.value = "staging"
    label.save()
    assert Label.objects.get(pk=label.pk).value == "staging"

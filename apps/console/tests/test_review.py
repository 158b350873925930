"""An outside review of the console: each test is a defect found (and fixed) while reading the
console as a hostile operator would."""

from __future__ import annotations

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "params",
    [
        {"q": "api\x00"},
        {"status__exact": "\x00"},
        {"term": "\x00", "app_label": "infrastructure", "model_name": "server"},
    ],
    ids=["search", "filter", "autocomplete"],
)
def test_a_nul_byte_in_a_console_query_string_is_refused_not_a_server_error(console, params):
    url = (
        reverse("admin:autocomplete")
        if "term" in params
        else reverse("admin:infrastructure_server_changelist")
    )
    if "term" in params:
        params = {**params, "field_name": "ssh_key", "model_name": "server"}

    response = console.get(url, params)

    assert response.status_code == 400

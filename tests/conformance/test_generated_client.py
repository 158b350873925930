"""A client generated from our own OpenAPI document (openapi-python-client, into the test's
temporary folder, never committed) drives the live server through one whole flow: create a
node pool and a label, attach the label, read it back through the pool, detach it, delete both.
If the document lies about a path, a parameter, a body or a status, the generated code breaks
here, as it would for the people generating clients from it."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from apps.accounts import services as account_services
from apps.orgs.tests.factories import OrganizationFactory

BIN = Path(sys.executable).parent
PACKAGE = "autoglue_generated_client"

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def generated_client(live_server_url, tmp_path):
    document = tmp_path / "openapi.json"
    document.write_bytes(requests.get(f"{live_server_url}/api/v1/openapi.json", timeout=30).content)
    result = subprocess.run(  # noqa: S603 - our own virtualenv's generator, fixed arguments
        [
            str(BIN / "openapi-python-client"),
            "generate",
            "--path",
            str(document),
            "--meta",
            "none",
            "--output-path",
            str(tmp_path / PACKAGE),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Unable to process schema" not in result.stdout, result.stdout
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def test_a_generated_client_creates_attaches_reads_and_deletes(generated_client, live_server_url):
    key = account_services.api_key_create_for_org(organization=OrganizationFactory())
    client = generated_client.AuthenticatedClient(
        base_url=live_server_url,
        token=key.plain,
        prefix="",
        auth_header_name="X-ORG-KEY",
        headers={"X-ORG-SECRET": key.secret},
        raise_on_unexpected_status=True,
    )
    api = importlib.import_module(f"{PACKAGE}.api")
    node_pools = importlib.import_module(f"{PACKAGE}.api.node_pools")
    labels = importlib.import_module(f"{PACKAGE}.api.labels")
    models = importlib.import_module(f"{PACKAGE}.models")
    for name in (
        "create_node_pool",
        "attach_node_pool_labels",
        "list_node_pool_labels",
        "detach_node_pool_label",
        "delete_node_pool",
        "get_node_pool",
    ):
        importlib.import_module(f"{node_pools.__name__}.{name}")
    for name in ("create_label", "delete_label"):
        importlib.import_module(f"{labels.__name__}.{name}")
    assert api is not None

    pool = node_pools.create_node_pool.sync(
        client=client, body=models.NodePoolRequest(name="web-pool")
    )
    label = labels.create_label.sync(
        client=client, body=models.LabelRequest(key="tier", value="web")
    )
    assert isinstance(pool, models.NodePool) and isinstance(label, models.Label)

    attached = node_pools.attach_node_pool_labels.sync_detailed(
        pool.id,
        client=client,
        body=models.AttachLabelsRequestRequest(label_ids=[str(label.id)]),
    )
    assert attached.status_code == 204

    read = node_pools.list_node_pool_labels.sync(pool.id, client=client)
    assert [(item.id, item.key, item.value) for item in read] == [(label.id, "tier", "web")]

    detached = node_pools.detach_node_pool_label.sync_detailed(pool.id, label.id, client=client)
    assert detached.status_code == 204
    assert node_pools.list_node_pool_labels.sync(pool.id, client=client) == []

    assert node_pools.delete_node_pool.sync_detailed(pool.id, client=client).status_code == 204
    assert labels.delete_label.sync_detailed(label.id, client=client).status_code == 204
    gone = node_pools.get_node_pool.sync(pool.id, client=client)
    assert isinstance(gone, models.Error) and gone.code == "node_pool_not_found"

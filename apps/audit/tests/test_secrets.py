"""No audit entry ever holds a secret: canaries written, rotated, revealed and deleted through
the API appear nowhere in the log; the console shows entries read-only."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEntry
from apps.audit.tests.support import all_entry_text
from apps.clusters.tests.factories import ClusterFactory
from apps.infrastructure.tests.factories import CredentialFactory, SSHKeyFactory

pytestmark = pytest.mark.django_db


def test_no_entry_contains_a_secret_canary(client_for, owner, org):
    client = client_for(owner, org)
    credential = CredentialFactory(organization=org, name="canary-cred")
    key = SSHKeyFactory(organization=org)
    cluster = ClusterFactory(organization=org)
    cluster.kubeconfig = "apiVersion: v1\n# CANARY-KUBECONFIG"
    cluster.save()

    client.post(f"/api/v1/credentials/{credential.pk}/reveal")
    rotated = client.patch(
        f"/api/v1/credentials/{credential.pk}",
        {"secret": {"access_key_id": "AKIACANARY0000000001", "secret_access_key": "CANARY-ROT"}},
        format="json",
    )
    client.get(f"/api/v1/ssh/{key.pk}?reveal=true")
    client.get(f"/api/v1/ssh/{key.pk}/download?part=private")
    client.get(f"/api/v1/clusters/{cluster.pk}?reveal=true")
    client.delete(f"/api/v1/credentials/{credential.pk}")

    assert rotated.status_code == 200
    text = all_entry_text()
    assert AuditEntry.objects.count() >= 8
    assert "CANARY" not in text
    assert "PRIVATE KEY" not in text
    assert "[redacted]" in text


def test_the_console_lists_entries_but_offers_no_add_change_or_delete(client, org):
    from apps.accounts.services import user_get_or_create_admin

    admin, _ = user_get_or_create_admin(email="ops@autoglue.example", password="a-long-password-1")
    client.force_login(admin)
    entry = AuditEntry.objects.first()

    listing = client.get("/admin/audit/auditentry/")
    detail = client.get(f"/admin/audit/auditentry/{entry.pk}/change/")
    add = client.get("/admin/audit/auditentry/add/")
    delete = client.post(f"/admin/audit/auditentry/{entry.pk}/delete/", {"post": "yes"})

    assert listing.status_code == 200
    assert detail.status_code == 200 and b'name="_save"' not in detail.content
    assert add.status_code == 403
    assert delete.status_code == 403
    assert AuditEntry.objects.filter(pk=entry.pk).exists()

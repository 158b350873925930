"""Each auditable event, caused the way a user causes it (through the API or the console), writes
the entry that says who did what, where, to which object."""

from __future__ import annotations

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.test import Client
from rest_framework.test import APIClient

from apps.accounts import services as account_services
from apps.accounts.models import APIKey
from apps.accounts.tests.factories import UserFactory
from apps.accounts.tests.support import idp_url, signing_key  # noqa: F401 - fixtures
from apps.accounts.tests.test_sso import _login, google  # noqa: F401 - fixture
from apps.audit import events
from apps.audit.models import AuditEntry
from apps.audit.services import chain_name
from apps.audit.tests.support import assert_entry
from apps.clusters.tests.factories import ClusterFactory, LabelFactory, NodePoolFactory
from apps.infrastructure.tests.factories import CredentialFactory, SSHKeyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(client_for):
    return client_for(UserFactory(primary_email="root@autoglue.example", is_admin=True))


def test_creating_a_label_records_who_from_where_and_the_new_fields(api, member, org):
    response = api.post(
        "/api/v1/labels",
        {"key": "example.com/tier", "value": "backend"},
        format="json",
        HTTP_USER_AGENT="terraform-provider-autoglue/1.0",
        REMOTE_ADDR="203.0.113.9",
    )
    assert response.status_code == 201

    entry = assert_entry(events.RESOURCE_CREATE, object_type="clusters.label")
    assert entry.object_id == response.json()["id"]
    assert entry.organization_id == org.pk and entry.chain == chain_name(org.pk)
    assert (entry.actor_type, entry.actor_id) == ("user", str(member.pk))
    assert entry.ip == "203.0.113.9"
    assert entry.user_agent == "terraform-provider-autoglue/1.0"
    assert entry.request_id == response["X-Request-ID"]
    assert entry.changes["value"] == {"after": "backend"}


def test_patching_a_label_records_only_what_changed(api, org):
    label = LabelFactory(organization=org, value="backend")

    api.patch(f"/api/v1/labels/{label.pk}", {"value": "frontend"}, format="json")

    entry = assert_entry(events.RESOURCE_UPDATE, object_id=str(label.pk))
    assert entry.changes == {"value": {"before": "backend", "after": "frontend"}}


def test_a_patch_that_changes_nothing_writes_no_entry(api, org):
    label = LabelFactory(organization=org, value="backend")

    api.patch(f"/api/v1/labels/{label.pk}", {"value": "backend"}, format="json")

    assert not AuditEntry.objects.filter(event=events.RESOURCE_UPDATE).exists()


def test_deleting_a_label_records_what_it_was(api, org):
    label = LabelFactory(organization=org, key="example.com/gone")

    assert api.delete(f"/api/v1/labels/{label.pk}").status_code == 204

    entry = assert_entry(events.RESOURCE_DELETE, object_id=str(label.pk))
    assert entry.changes["key"] == {"before": "example.com/gone"}


def test_attaching_and_detaching_a_label_are_recorded(api, org):
    pool = NodePoolFactory(organization=org)
    label = LabelFactory(organization=org)

    attached = api.post(
        f"/api/v1/node-pools/{pool.pk}/labels", {"label_ids": [str(label.pk)]}, format="json"
    )
    detached = api.delete(f"/api/v1/node-pools/{pool.pk}/labels/{label.pk}")

    assert attached.status_code == 204 and detached.status_code == 204
    attach = assert_entry(events.RESOURCE_ATTACH, object_type="clusters.nodepoollabel")
    detach = assert_entry(events.RESOURCE_DETACH, object_type="clusters.nodepoollabel")
    assert attach.changes["label_id"] == {"after": str(label.pk)}
    assert detach.changes["node_pool_id"] == {"before": str(pool.pk)}
    assert attach.organization_id == detach.organization_id == org.pk


def test_revealing_a_credential_records_the_read_without_the_secret(client_for, owner, org):
    credential = CredentialFactory(organization=org)

    response = client_for(owner, org).post(f"/api/v1/credentials/{credential.pk}/reveal")

    assert response.status_code == 200
    entry = assert_entry(events.SECRET_REVEAL, object_id=str(credential.pk))
    assert entry.actor_id == str(owner.pk)
    assert "CANARY" not in repr(entry.metadata) + repr(entry.changes)


def test_downloading_a_private_ssh_key_is_recorded_as_a_download(client_for, owner, org):
    key = SSHKeyFactory(organization=org)

    response = client_for(owner, org).get(f"/api/v1/ssh/{key.pk}/download?part=private")

    assert response.status_code == 200
    assert_entry(events.SECRET_DOWNLOAD, object_id=str(key.pk), organization_id=org.pk)


def test_revealing_a_clusters_kubeconfig_is_recorded(client_for, owner, org):
    cluster = ClusterFactory(organization=org)

    response = client_for(owner, org).get(f"/api/v1/clusters/{cluster.pk}?reveal=true")

    assert response.status_code == 200
    assert_entry(events.SECRET_KUBECONFIG, object_id=str(cluster.pk), organization_id=org.pk)


def test_console_sign_in_and_a_failed_one_are_recorded(db):
    account_services.user_get_or_create_admin(
        email="ops@autoglue.example", password="a-long-password-1"
    )
    browser = Client()

    browser.post(
        "/admin/login/", {"username": "ops@autoglue.example", "password": "wrong-password-CANARY"}
    )
    browser.post(
        "/admin/login/", {"username": "ops@autoglue.example", "password": "a-long-password-1"}
    )

    failed = assert_entry(events.AUTH_SIGN_IN_FAILED)
    assert failed.metadata["username"] == "ops@autoglue.example"
    assert "CANARY" not in repr(failed.metadata)
    signed_in = assert_entry(events.AUTH_SIGN_IN)
    assert signed_in.actor_label == "ops@autoglue.example"
    assert signed_in.chain == "platform"


def test_a_reused_refresh_token_is_recorded(member, signing_key):  # noqa: F811
    pair = account_services.token_pair_issue(user=member)
    refresh = APIClient()
    refresh.post("/api/v1/auth/refresh", {"refresh_token": pair.refresh_token}, format="json")

    reuse = refresh.post(
        "/api/v1/auth/refresh", {"refresh_token": pair.refresh_token}, format="json"
    )

    assert reuse.status_code == 401
    entry = assert_entry(events.AUTH_REFRESH_REUSE)
    assert entry.metadata["user_id"] == str(member.pk)
    assert pair.refresh_token.split(".", 1)[1] not in repr(entry.metadata)


def test_creating_and_revoking_a_user_api_key_are_recorded(client_for, member):
    client = client_for(member)

    created = client.post("/api/v1/me/api-keys", {"name": "laptop"}, format="json").json()
    client.delete(f"/api/v1/me/api-keys/{created['id']}")

    create = assert_entry(events.KEY_CREATE, object_id=created["id"])
    revoke = assert_entry(events.KEY_REVOKE, object_id=created["id"])
    assert create.actor_id == revoke.actor_id == str(member.pk)
    assert created["plain"] not in repr(create.changes)
    assert create.changes["secret_hash"] == {"after": "[redacted]"}


def test_changing_a_members_role_is_recorded_as_a_role_change(client_for, owner, member, org):
    response = client_for(owner).post(
        f"/api/v1/orgs/{org.pk}/members",
        {"user_id": str(member.pk), "role": "admin"},
        format="json",
    )

    assert response.status_code in (200, 201)
    entry = assert_entry(events.MEMBER_ROLE_CHANGE, organization_id=org.pk)
    assert entry.changes["role"] == {"before": "member", "after": "admin"}
    assert entry.actor_id == str(owner.pk)


def test_launching_and_canceling_a_job_are_recorded(root):
    launched = root.post(
        "/api/v1/admin/archer/jobs", {"type": "bastion_sweep", "payload": {}}, format="json"
    )
    job_id = launched.json()["id"]
    canceled = root.post(f"/api/v1/admin/archer/jobs/{job_id}/cancel")

    assert canceled.status_code == 200
    launch = assert_entry(events.JOB_LAUNCH, object_id=str(job_id))
    assert launch.metadata["kind"] == "bastion_sweep"
    assert_entry(events.JOB_CANCEL, object_id=str(job_id), actor_type="user")


def test_a_console_action_log_entry_becomes_an_audit_entry_in_the_objects_org(org):
    admin = UserFactory(is_admin=True)
    label = LabelFactory(organization=org)

    LogEntry.objects.log_actions(
        user_id=admin.pk,
        queryset=[label],
        action_flag=CHANGE,
        change_message=[{"changed": {"fields": ["Value"]}}],
        single_object=True,
    )

    entry = assert_entry(events.CONSOLE_ACTION, object_id=str(label.pk))
    assert entry.organization_id == org.pk
    assert entry.metadata["action"] == "change"
    assert entry.object_type == "clusters.label"


def test_entries_written_by_a_job_name_the_job_as_actor(org):
    from apps.audit import context
    from apps.audit.services import audit_record
    from apps.jobs.models import JobRun

    job = JobRun.objects.create(kind="bastion_sweep", queue="maintenance")
    with context.job_actor(job):
        audit_record(event=events.RESOURCE_UPDATE, organization_id=org.pk, object_type="x")

    entry = AuditEntry.objects.filter(object_type="x").get()
    assert (entry.actor_type, entry.actor_id, entry.actor_label) == (
        "job",
        str(job.pk),
        "bastion_sweep",
    )


def test_an_org_key_is_recorded_as_the_actor(org, org_key_client):
    client = org_key_client(org)
    response = client.post("/api/v1/labels", {"key": "k", "value": "v"}, format="json")

    assert response.status_code == 201
    entry = assert_entry(events.RESOURCE_CREATE, object_id=response.json()["id"])
    assert entry.actor_type == "org_key"


def test_a_new_org_key_is_a_key_creation_in_its_org(org):
    created = account_services.api_key_create_for_org(organization=org, name="terraform")

    entry = assert_entry(events.KEY_CREATE, object_id=str(created.key.pk))
    assert entry.organization_id == org.pk
    assert created.secret not in repr(entry.changes)
    assert APIKey.objects.filter(pk=created.key.pk).exists()


def test_an_sso_sign_in_and_a_refused_one_are_recorded(google):  # noqa: F811
    signed_in = _login(google, sub="audit-sub", email="ann@acme.example")
    refused = _login(google, sub="evil-sub", email="eve@evil.example", hd="evil.example")

    assert signed_in.status_code == 200 and refused.status_code >= 400
    entry = assert_entry(events.AUTH_SIGN_IN, actor_label="ann@acme.example")
    assert entry.metadata == {"method": "google"}
    failed = assert_entry(events.AUTH_SIGN_IN_FAILED, metadata__method="google")
    assert failed.metadata["reason"] == refused.json()["code"]

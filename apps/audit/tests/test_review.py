"""An outside review of the audit log, idempotency keys, ETags and rate limits: tenancy, secrets,
odd input that must not be a 500, and the chain's tamper evidence."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.accounts.tests.support import bearer_client, real_org_key_client, signing_key  # noqa: F401
from apps.audit import events
from apps.audit.models import AuditChainHead, AuditEntry, IdempotencyRecord
from apps.audit.services import audit_prune, audit_record, audit_verify, chain_name
from apps.audit.tests.support import sealed
from apps.clusters.models import Label
from apps.orgs.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

BODY = {"key": "example.com/tier", "value": "backend"}


def _post(client, key, body=BODY, **extra):
    return client.post("/api/v1/labels", body, format="json", HTTP_IDEMPOTENCY_KEY=key, **extra)


def _broken(org):
    sealed()
    (report,) = audit_verify(organization_id=org.pk)
    return report.broken


# --- the chain ---------------------------------------------------------------------------------


def test_a_chain_whose_every_entry_was_pruned_still_verifies(org, settings):
    audit_record(event=events.RESOURCE_UPDATE, organization_id=org.pk)
    sealed()
    AuditEntry.objects.filter(chain=chain_name(org.pk)).update(
        occurred_at=timezone.now() - timedelta(days=500)
    )
    settings.AUDIT_RETENTION_DAYS = 400

    assert audit_prune() > 0
    assert not AuditEntry.objects.filter(chain=chain_name(org.pk)).exists()
    assert _broken(org) is None


def test_deleting_every_entry_behind_retentions_back_is_still_caught(org):
    audit_record(event=events.RESOURCE_UPDATE, organization_id=org.pk)
    sealed()
    AuditEntry.objects.filter(chain=chain_name(org.pk)).delete()

    assert _broken(org) is not None


@pytest.mark.parametrize(
    "number", [1e16, 1.5e300, -0.0, 123456789012345678901234.0, float("nan"), float("inf")]
)
def test_a_float_in_a_diff_does_not_make_an_untouched_chain_look_tampered(org, number):
    # PostgreSQL's jsonb keeps numbers as decimals: 1e16 comes back as 10000000000000000 and
    # -0.0 as 0.0, so the stored entry must hash the way it reads back.
    audit_record(
        event=events.RESOURCE_UPDATE,
        organization_id=org.pk,
        changes={"scope": {"before": {"n": 1}, "after": {"n": number}}},
        metadata={"sizes": [number]},
    )

    assert _broken(org) is None


# --- idempotency keys: who shares a key --------------------------------------------------------


def test_two_users_with_real_tokens_never_share_an_idempotency_key(
    bearer_client,  # noqa: F811
    member,
    owner,
    org,
):
    first = _post(bearer_client(member, org), "shared")
    second = _post(bearer_client(owner, org), "shared")

    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in second
    assert second.json()["id"] != first.json()["id"]


def test_an_org_key_and_a_user_never_share_an_idempotency_key(
    bearer_client,  # noqa: F811
    real_org_key_client,  # noqa: F811
    member,
    org,
):
    by_user = _post(bearer_client(member, org), "shared")
    by_key = _post(real_org_key_client(org), "shared")

    assert by_user.status_code == by_key.status_code == 201
    assert "Idempotent-Replayed" not in by_key
    assert Label.objects.filter(organization=org).count() == 2


def test_one_user_in_two_orgs_gets_one_object_in_each_with_the_same_key(
    bearer_client,  # noqa: F811
    member,
    org,
    other_org,
):
    MembershipFactory(user=member, organization=other_org, role="member")

    in_org = _post(bearer_client(member, org), "shared")
    in_other = _post(bearer_client(member, other_org), "shared")

    assert in_org.status_code == in_other.status_code == 201
    assert "Idempotent-Replayed" not in in_other
    assert Label.objects.filter(organization=other_org).count() == 1


def test_a_wrong_credential_with_an_idempotency_key_is_401_and_binds_nothing(anon):
    response = _post(anon, "k", HTTP_AUTHORIZATION="Bearer not-a-token")

    assert response.status_code == 401
    assert not IdempotencyRecord.objects.exists()


# --- idempotency keys: odd input -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "status"),
    [
        ("ключ-☃", 201),
        ("  padded  ", 201),
        ("a" * 255, 201),
        ("a" * 256, 400),
        ("nul\x00byte", 400),
        ("tab\tinside", 400),
    ],
)
def test_odd_idempotency_keys_are_used_or_refused_but_never_a_500(api, key, status):
    response = _post(api, key)

    assert response.status_code == status
    if status == 400:
        assert response.json()["code"] == "invalid_idempotency_key"


def test_a_body_that_is_not_json_is_a_400_replayed_as_such(api):
    def send():
        return api.generic(
            "POST",
            "/api/v1/labels",
            b"{not json",
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY="broken",
        )

    first, again = send(), send()

    assert first.status_code == again.status_code == 400
    assert again["Idempotent-Replayed"] == "true"


def test_json_nested_too_deep_with_an_idempotency_key_is_a_400_not_a_500(api):
    body = b"[" * 100_000 + b"]" * 100_000
    response = api.generic(
        "POST", "/api/v1/labels", body, content_type="application/json", HTTP_IDEMPOTENCY_KEY="deep"
    )

    assert response.status_code == 400


def test_error_answers_of_the_idempotency_layer_carry_the_ratelimit_headers(api):
    _post(api, "k")
    refused = _post(api, "k", body={**BODY, "value": "other"})
    invalid = _post(api, "x" * 300)

    for response in (refused, invalid):
        assert response.status_code in (400, 422)
        assert response["RateLimit-Limit"]
        assert response["RateLimit-Remaining"]


# --- the audit API: odd input --------------------------------------------------------------------


@pytest.fixture
def admin_api(client_for, admin_user, org):
    return client_for(admin_user, org)


@pytest.mark.parametrize(
    "query",
    [
        {"since": "yesterday"},
        {"until": "2026-13-45T99:00:00Z"},
        {"actor_type": "robot"},
        {"object_id": "a\x00b"},
        {"event": "x" * 5000},
        {"cursor": "garbage"},
        {"cursor": "cD0yMDI2LTAxLTAx"},
        {"limit": "abc"},
        {"limit": "-5"},
        {"limit": "99999999999999999999"},
    ],
)
def test_odd_audit_filters_and_cursors_are_answered_without_a_500(admin_api, org, query):
    audit_record(event=events.RESOURCE_UPDATE, organization_id=org.pk)

    listed = admin_api.get("/api/v1/audit-entries", query)
    exported = admin_api.get("/api/v1/audit-entries/export", query)

    assert listed.status_code < 500
    assert exported.status_code < 500
    if exported.status_code == 200:
        b"".join(exported.streaming_content)


@pytest.mark.parametrize(
    ("url", "position"),
    [
        ("/api/v1/audit-entries", "last-tuesday"),  # ordered by a timestamp
        ("/api/v1/audit-entries", "1e400"),
        ("/api/v1/labels", "yesterday"),  # ordered by a timestamp
    ],
)
def test_an_edited_cursor_position_is_a_400(admin_api, url, position):
    import base64

    cursor = base64.b64encode(f"p={position}".encode()).decode()

    response = admin_api.get(url, {"cursor": cursor})

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_cursor"


def test_an_entry_id_that_is_not_a_uuid_is_a_400_and_another_orgs_entry_a_404(admin_api, other_org):
    theirs = audit_record(event=events.RESOURCE_UPDATE, organization_id=other_org.pk)

    assert admin_api.get("/api/v1/audit-entries/not-a-uuid").status_code == 400
    assert admin_api.get(f"/api/v1/audit-entries/{theirs.pk}").status_code == 404
    exported = admin_api.get("/api/v1/audit-entries/export")
    assert str(theirs.pk) not in b"".join(exported.streaming_content).decode()


def test_the_verify_route_answers_an_odd_organization_id_without_a_500(client_for, org):
    from apps.accounts.tests.factories import UserFactory

    root = UserFactory(is_admin=True)
    response = client_for(root).get("/api/v1/admin/audit/verify", {"organization_id": "x\x00y"})

    assert response.status_code in (200, 400)


def test_the_audit_list_costs_the_same_few_queries_for_many_entries(
    admin_api, org, django_assert_max_num_queries
):
    for i in range(60):
        audit_record(event=events.RESOURCE_UPDATE, organization_id=org.pk, object_id=i)

    with django_assert_max_num_queries(8):
        response = admin_api.get("/api/v1/audit-entries")

    assert len(response.json()) >= 60


# --- ETag / If-Match: odd values ---------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ['W/"abc"', '"a", "b"', "garbage", '"', ",,,", '*, "x"', "\u2603", "x" * 10_000],
)
def test_odd_if_match_values_are_412_or_honoured_never_a_500(api, org, value):
    label = Label.objects.create(organization=org, key="k", value="v")

    patched = api.patch(
        f"/api/v1/labels/{label.pk}", {"value": "w"}, format="json", HTTP_IF_MATCH=value
    )
    deleted = api.delete(f"/api/v1/labels/{label.pk}", HTTP_IF_MATCH=value)

    assert patched.status_code in (200, 412)
    assert deleted.status_code in (204, 412)


def test_a_service_backed_create_carries_an_etag_good_for_the_next_patch(api, org):
    created = api.post("/api/v1/ssh", {"name": "deploy", "type": "ed25519"}, format="json")

    assert created.status_code == 201
    assert created["ETag"] == api.get(f"/api/v1/ssh/{created.json()['id']}")["ETag"]


def test_the_head_row_is_kept_when_its_chain_is_pruned_empty(org, settings):
    audit_record(event=events.RESOURCE_UPDATE, organization_id=org.pk)
    sealed()
    AuditEntry.objects.filter(chain=chain_name(org.pk)).update(
        occurred_at=timezone.now() - timedelta(days=500)
    )
    settings.AUDIT_RETENTION_DAYS = 400
    audit_prune()

    (entry,) = sealed([audit_record(event=events.RESOURCE_UPDATE, organization_id=org.pk)])

    head = AuditChainHead.objects.get(chain=chain_name(org.pk))
    assert entry.seq == head.base_seq + 1
    assert _broken(org) is None


# --- idempotency keys: failures and lost access --------------------------------------------------


def test_a_500_inside_the_view_gives_the_key_back_for_a_retry(api, org, monkeypatch):
    from apps.core.api.viewsets import OrgScopedViewSet

    def explode(self, serializer):
        raise RuntimeError("disk on fire")

    with monkeypatch.context() as patch:
        patch.setattr(OrgScopedViewSet, "perform_create", explode)
        failed = _post(api, "retry-after-500")

    retried = _post(api, "retry-after-500")

    assert failed.status_code == 500
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried
    assert Label.objects.filter(organization=org).count() == 1


def test_a_member_removed_from_the_org_gets_no_replay_of_its_responses(
    bearer_client,  # noqa: F811
    member,
    org,
):
    client = bearer_client(member, org)
    assert _post(client, "before-removal").status_code == 201
    member.memberships.filter(organization=org).delete()

    again = _post(client, "before-removal")

    assert again.status_code == 403
    assert "Idempotent-Replayed" not in again


def test_a_change_rolled_back_leaves_no_audit_entry(org):
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        Label.objects.create(organization=org, key="ghost", value="v")
        raise RuntimeError("the change fails after its entry was written")

    assert not AuditEntry.objects.filter(object_type="clusters.label").exists()
    assert _broken(org) is None


# --- changes written with QuerySet.update() ------------------------------------------------------


def test_patching_a_cluster_records_what_changed(api, org):
    from apps.clusters.tests.factories import ClusterFactory

    cluster = ClusterFactory(organization=org, name="before")

    response = api.patch(f"/api/v1/clusters/{cluster.pk}", {"name": "after"}, format="json")

    assert response.status_code == 200
    entry = AuditEntry.objects.filter(
        event=events.RESOURCE_UPDATE, object_type="clusters.cluster", object_id=str(cluster.pk)
    ).first()
    assert entry is not None
    assert entry.changes["name"] == {"before": "before", "after": "after"}
    assert "CANARY" not in repr(entry.changes)
    assert _broken(org) is None


def test_detaching_a_clusters_bastion_records_the_change(api, org):
    from apps.clusters.tests.factories import ClusterFactory
    from apps.infrastructure.tests.factories import ServerFactory

    bastion = ServerFactory(organization=org, role="bastion")
    cluster = ClusterFactory(organization=org, bastion_server=bastion)

    response = api.delete(f"/api/v1/clusters/{cluster.pk}/bastion")

    assert response.status_code < 300
    entry = AuditEntry.objects.filter(
        object_type="clusters.cluster", object_id=str(cluster.pk), event=events.RESOURCE_UPDATE
    ).first()
    assert entry is not None
    assert entry.changes["bastion_server_id"] == {"before": str(bastion.pk), "after": None}


def test_pruning_in_small_batches_leaves_the_same_verifiable_chain(org, settings):
    for i in range(7):
        audit_record(event=events.RESOURCE_UPDATE, organization_id=org.pk, object_id=i)
    sealed()
    rows = AuditEntry.objects.filter(chain=chain_name(org.pk)).order_by("seq")
    cut = rows[5]
    rows.filter(seq__lte=cut.seq).update(occurred_at=timezone.now() - timedelta(days=500))
    settings.AUDIT_RETENTION_DAYS = 400

    assert audit_prune(batch_size=2) == cut.seq

    assert rows.first().seq == cut.seq + 1
    head = AuditChainHead.objects.get(chain=chain_name(org.pk))
    assert (head.base_seq, head.base_hash) == (cut.seq, cut.hash)
    assert _broken(org) is None


@pytest.mark.django_db
def test_a_write_whose_audit_entry_cannot_be_written_leaves_no_change(api, org, monkeypatch):
    """The change and its audit entry are one transaction: if the entry fails, so does the
    change (the client gets a 500, and the label does not exist)."""
    from apps.clusters.models import Label

    def refuse(**kwargs):
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr("apps.audit.signals.audit_record", refuse)
    api.raise_request_exception = False
    response = api.post("/api/v1/labels", {"key": "tier", "value": "web"}, format="json")
    assert response.status_code == 500
    assert not Label.objects.filter(organization=org, key="tier").exists()


@pytest.mark.django_db
def test_a_write_outside_the_tenant_routes_is_one_transaction_with_its_audit_entry_too(
    client_for, member, monkeypatch
):
    from apps.accounts.models import APIKey

    def refuse(**kwargs):
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr("apps.audit.signals.audit_record", refuse)
    client = client_for(member)
    client.raise_request_exception = False
    response = client.post("/api/v1/me/api-keys", {"name": "ci"}, format="json")
    assert response.status_code == 500
    assert not APIKey.objects.filter(user=member).exists()


@pytest.mark.django_db
def test_a_database_error_answered_as_a_400_inside_a_write_leaves_no_change(api, org, monkeypatch):
    """A value PostgreSQL refuses (a DataError, answered 400 `invalid_input`) aborts the
    request's transaction: the answer is still the 400, and nothing of the write remains."""
    from django.db import connection

    from apps.clusters.models import Label

    def refuse(**kwargs):
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 / 0")

    monkeypatch.setattr("apps.audit.signals.audit_record", refuse)
    response = api.post("/api/v1/labels", {"key": "tier", "value": "web"}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_input"
    assert not Label.objects.filter(organization=org, key="tier").exists()


@pytest.mark.django_db
def test_a_failed_write_still_records_that_its_key_was_used(member, monkeypatch):
    """Authentication (its last-used touch, the rate counters) runs before the write's
    transaction, so it holds no key row locked while the write works and a 5xx undoes none of
    it."""
    from rest_framework.test import APIClient

    from apps.accounts.models import APIKey
    from apps.accounts.services import api_key_create_for_user

    created = api_key_create_for_user(user=member, name="ci")

    def refuse(**kwargs):
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr("apps.audit.signals.audit_record", refuse)
    client = APIClient()
    client.raise_request_exception = False
    response = client.post(
        "/api/v1/me/api-keys", {"name": "second"}, format="json", HTTP_X_API_KEY=created.plain
    )
    assert response.status_code == 500
    assert APIKey.objects.filter(user=member).count() == 1
    assert APIKey.objects.get(pk=created.key.pk).last_used_at is not None


def test_an_admin_demoted_to_viewer_gets_no_replay_of_a_reveal(bearer_client, admin_user, org):  # noqa: F811
    from apps.infrastructure.tests.factories import CredentialFactory

    credential = CredentialFactory(organization=org)
    client = bearer_client(admin_user, org)
    url = f"/api/v1/credentials/{credential.pk}/reveal"
    first = client.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="reveal-once")
    assert first.status_code == 200 and "CANARY" in first.content.decode()
    admin_user.memberships.filter(organization=org).update(role="viewer")

    again = client.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="reveal-once")

    assert again.status_code == 403
    assert "Idempotent-Replayed" not in again
    assert "CANARY" not in again.content.decode()


def test_an_admin_removed_from_the_org_gets_no_replay_of_a_reveal(bearer_client, admin_user, org):  # noqa: F811
    from apps.infrastructure.tests.factories import CredentialFactory

    credential = CredentialFactory(organization=org)
    client = bearer_client(admin_user, org)
    url = f"/api/v1/credentials/{credential.pk}/reveal"
    assert client.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="k").status_code == 200
    admin_user.memberships.filter(organization=org).delete()

    again = client.post(url, {}, format="json", HTTP_IDEMPOTENCY_KEY="k")

    assert again.status_code in (403, 404)
    assert "CANARY" not in again.content.decode()


def test_a_create_answered_with_join_secrets_is_not_replayed_to_a_role_that_lost_them(
    bearer_client,  # noqa: F811
    admin_user,
    org,
):
    from apps.clusters.models import Cluster

    client = bearer_client(admin_user, org)
    first = client.post(
        "/api/v1/clusters", {"name": "prod"}, format="json", HTTP_IDEMPOTENCY_KEY="c"
    )
    assert first.status_code == 201 and first.json()["random_token"]
    # A member may still create clusters, but not see their join secrets.
    admin_user.memberships.filter(organization=org).update(role="member")

    again = client.post(
        "/api/v1/clusters", {"name": "prod"}, format="json", HTTP_IDEMPOTENCY_KEY="c"
    )

    assert again.status_code == 403
    assert first.json()["random_token"] not in again.content.decode()
    assert Cluster.objects.filter(organization=org).count() == 1

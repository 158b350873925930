"""Idempotency keys through the HTTP API: a retried POST never creates twice."""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg
import pytest
import requests
from django.db import connection
from django.utils import timezone

from apps.accounts import services as account_services
from apps.audit import idempotency
from apps.audit.models import AuditEntry, IdempotencyRecord
from apps.clusters.models import Label
from apps.infrastructure.tests.factories import CredentialFactory
from apps.orgs.models import Membership
from apps.orgs.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

BODY = {"key": "example.com/tier", "value": "backend"}


def _post(client, body=BODY, key="retry-1"):
    return client.post("/api/v1/labels", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


def test_a_repeat_with_the_same_body_gets_the_first_response_and_creates_nothing(api, org):
    first = _post(api)
    again = _post(api, body={"value": "backend", "key": "example.com/tier"})

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert again["ETag"] == first["ETag"]
    assert Label.objects.filter(organization=org).count() == 1


def test_a_repeat_with_a_different_body_is_422(api, org):
    _post(api)
    response = _post(api, body={**BODY, "value": "frontend"})

    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert Label.objects.filter(organization=org).count() == 1


def test_a_repeat_while_the_first_is_still_running_is_409(api, member, org):
    scope = idempotency.scope_digest(principal=f"user:{member.pk}", org=str(org.pk), key="busy")
    db = connection.settings_dict
    first = psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=True
    )
    # The first request's transaction is open: it holds the key's lock.
    with first, first.transaction():
        first.execute("SELECT pg_advisory_xact_lock(%s, %s)", idempotency.lock_key(scope))

        response = _post(api, body={"key": "k", "value": "v"}, key="busy")

    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_key_in_flight"
    assert response["Retry-After"] == "1"
    assert not Label.objects.filter(organization=org).exists()


def test_a_key_reserved_but_never_answered_runs_at_once(api, member, org):
    # A reservation committed before the request ran (as earlier versions did) whose request
    # died: the key is not stuck until it times out.
    scope = idempotency.scope_digest(principal=f"user:{member.pk}", org=str(org.pk), key="lost")
    IdempotencyRecord.objects.create(
        scope=scope, request_hash="0" * 64, created_at=timezone.now(), completed_at=None
    )

    response = _post(api, key="lost")

    assert response.status_code == 201 and "Idempotent-Replayed" not in response
    assert _post(api, key="lost")["Idempotent-Replayed"] == "true"
    assert Label.objects.filter(organization=org).count() == 1


def test_the_same_key_from_another_principal_is_another_request(api, client_for, owner, org):
    _post(api)
    other = _post(client_for(owner, org), body={**BODY, "key": "example.com/other"})

    assert other.status_code == 201
    assert Label.objects.filter(organization=org).count() == 2


def test_an_empty_header_counts_as_absent(api, org):
    assert _post(api, key="").status_code == 201
    assert _post(api, body={**BODY, "key": "example.com/b"}, key="").status_code == 201

    assert Label.objects.filter(organization=org).count() == 2
    assert not IdempotencyRecord.objects.exists()


def test_a_key_older_than_a_day_is_forgotten(api, org):
    _post(api)
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))

    again = _post(api, body={**BODY, "key": "example.com/again"})

    assert again.status_code == 201 and "Idempotent-Replayed" not in again
    assert Label.objects.filter(organization=org).count() == 2


def test_a_failed_validation_is_replayed_as_the_same_error(api, org):
    first = _post(api, body={"key": "", "value": "x"})
    again = _post(api, body={"key": "", "value": "x"})

    assert first.status_code == again.status_code == 400
    assert again.json() == first.json()


def test_a_secret_in_a_stored_response_is_kept_encrypted(client_for, member):
    client = client_for(member)
    first = client.post(
        "/api/v1/me/api-keys", {"name": "ci"}, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )
    again = client.post(
        "/api/v1/me/api-keys", {"name": "ci"}, format="json", HTTP_IDEMPOTENCY_KEY="k"
    )

    assert again.json()["plain"] == first.json()["plain"]
    assert again["Cache-Control"] == "no-store"
    stored = IdempotencyRecord.objects.values("body", "body_secret").get()
    assert stored["body"] == ""
    assert first.json()["plain"] not in stored["body_secret"]


def test_an_anonymous_post_is_not_bound_to_a_key(anon):
    for _ in range(2):
        response = anon.post(
            "/api/v1/auth/logout",
            {"refresh_token": "x.y"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="anon",
        )
        assert response.status_code == 204
    assert not IdempotencyRecord.objects.exists()


def test_a_key_longer_than_255_characters_is_400(api):
    response = _post(api, key="k" * 256)

    assert response.status_code == 400 and response.json()["code"] == "invalid_idempotency_key"


@pytest.mark.django_db(transaction=True)
def test_concurrent_posts_with_one_key_create_exactly_one_object(live_server, org, member):
    created = account_services.api_key_create_for_user(user=member, name="tf")
    headers = {
        "X-API-KEY": created.plain,
        "X-Org-ID": str(org.pk),
        "Idempotency-Key": "apply-42",
        "Content-Type": "application/json",
    }
    senders = 6
    barrier = threading.Barrier(senders)
    statuses: list[int] = []
    bodies: list[dict] = []

    def send() -> None:
        barrier.wait()
        response = requests.post(
            f"{live_server.url}/api/v1/labels", json=BODY, headers=headers, timeout=30
        )
        statuses.append(response.status_code)
        if response.status_code == 201:
            bodies.append(response.json())

    threads = [threading.Thread(target=send) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert Label.objects.filter(organization=org).count() == 1
    assert set(statuses) <= {201, 409} and 201 in statuses
    assert len({body["id"] for body in bodies}) == 1


def test_the_daily_prune_forgets_keys_older_than_a_day(api, org):
    from apps.audit import tasks

    _post(api)
    _post(api, body={**BODY, "key": "example.com/recent"}, key="recent")
    IdempotencyRecord.objects.exclude(scope__isnull=True).filter(
        pk=IdempotencyRecord.objects.order_by("created_at").first().pk
    ).update(created_at=timezone.now() - timedelta(hours=30))

    assert tasks.audit_prune()["idempotency_keys"] == 1
    assert IdempotencyRecord.objects.count() == 1


def test_a_key_used_without_x_org_id_is_bound_to_the_org_the_request_ran_in(
    client_for, member, org, other_org
):
    # Alice is only in Acme, so a request without X-Org-ID runs in Acme. Moved to Globex, the
    # same request runs in Globex: it must create there, not replay Acme's label.
    client = client_for(member)
    first = _post(client, key="k1")
    Membership.objects.filter(user=member, organization=org).delete()
    MembershipFactory(user=member, organization=other_org, role="member")

    again = _post(client, key="k1")

    assert first.status_code == again.status_code == 201
    assert "Idempotent-Replayed" not in again
    assert again.json()["organization_id"] == str(other_org.pk)
    assert Label.objects.filter(organization=other_org).count() == 1


def test_the_org_header_spelled_in_upper_case_is_the_same_org(api, member, org):
    first = _post(api, key="k1")
    api.credentials(HTTP_X_ORG_ID=str(org.pk).upper())

    again = _post(api, key="k1")

    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert Label.objects.filter(organization=org).count() == 1


def test_a_repeated_reveal_runs_again_and_is_audited_again(client_for, owner, org):
    client = client_for(owner, org)
    credential = CredentialFactory(organization=org)
    url = f"/api/v1/credentials/{credential.pk}/reveal"

    first = client.post(url, HTTP_IDEMPOTENCY_KEY="reveal-1")
    again = client.post(url, HTTP_IDEMPOTENCY_KEY="reveal-1")
    reveals = AuditEntry.objects.filter(event="secret.reveal").count()
    client.delete(f"/api/v1/credentials/{credential.pk}")
    after_delete = client.post(url, HTTP_IDEMPOTENCY_KEY="reveal-1")

    assert first.status_code == again.status_code == 200
    assert "Idempotent-Replayed" not in again
    assert again.json()["secret_access_key"].startswith("CANARY-")
    assert reveals == 2
    assert after_delete.status_code == 404
    assert "CANARY" not in after_delete.content.decode()
    # Only the 404 is kept for the key; the secret never was.
    assert list(IdempotencyRecord.objects.values_list("status_code", "body_secret")) == [(404, "")]


def test_deleting_an_org_deletes_the_answers_stored_for_it(api, client_for, owner, org):
    _post(api, key="k1")
    client_for(owner).post(
        "/api/v1/me/api-keys", {"name": "ci"}, format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    assert IdempotencyRecord.objects.count() == 2

    assert client_for(owner).delete(f"/api/v1/orgs/{org.pk}").status_code == 204

    # The org's label answer is gone; the owner's own API key answer (no org) stays.
    assert IdempotencyRecord.objects.count() == 1

"""The /api/v1/webhooks routes: owners and admins only, the secret shown once, another
organization's endpoints, deliveries and redelivery out of reach, SSRF targets refused at entry."""

from __future__ import annotations

import json

import pytest

from apps.orgs.tests.factories import MembershipFactory
from apps.webhooks import services
from apps.webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner_api(client_for, owner, org):
    return client_for(owner, org)


def _endpoint(org, url="https://hooks.example.com/autoglue", **kwargs):
    endpoint, _ = services.webhook_endpoint_create(organization=org, url=url, **kwargs)
    return endpoint


def test_an_owner_creates_an_endpoint_and_sees_its_secret_only_in_that_answer(owner_api):
    response = owner_api.post(
        "/api/v1/webhooks",
        {
            "url": "https://hooks.example.com/autoglue",
            "event_types": ["cluster_run.failed"],
            "headers": {"Authorization": "Bearer CANARY-token"},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["secret"].startswith("whsec_")
    assert body["header_names"] == ["Authorization"]

    listed = owner_api.get("/api/v1/webhooks")
    shown = owner_api.get(f"/api/v1/webhooks/{body['id']}")
    for answer in (listed, shown):
        assert answer.status_code == 200
        assert body["secret"] not in answer.content.decode()
        assert "CANARY" not in answer.content.decode()


def test_rotating_answers_a_new_secret_and_when_the_old_one_stops_signing(owner_api, org):
    endpoint = _endpoint(org)
    response = owner_api.post(
        f"/api/v1/webhooks/{endpoint.pk}/rotate-secret", {"overlap_seconds": 600}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["secret"].startswith("whsec_")
    assert response.json()["secret_rotation_ends_at"]


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://hooks.example.com/x", "https"),
        ("https://127.0.0.1/x", "loopback"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://[fd00:ec2::254]/x", "metadata"),
        ("https://user:pw@hooks.example.com/x", "user name"),
        ("https://hooks example.com/x", "spaces"),
        ("ftp://hooks.example.com/x", "https"),
        ("https://10.0.0.5/x", "private"),
        ("https://192.168.1.10/x", "private"),
        ("https://100.64.0.9/x", "private"),
        ("https://[fd12:3456::1]/x", "private"),
        ("https://[2002:c0a8:0101::1]/x", "private"),
        ("https://203.0.113.9/x", "private"),
        ("https://hooks.example.com:22/x", "ports 443, 8443"),
        ("https://hooks.example.com:6379/x", "ports 443, 8443"),
    ],
)
def test_unsafe_urls_are_refused_at_entry_naming_the_field(owner_api, settings, url, fragment):
    settings.AUTOGLUE_ALLOW_LOOPBACK_TARGETS = False
    response = owner_api.post("/api/v1/webhooks", {"url": url}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "validation_error"
    assert body["message"].startswith("url:")
    assert fragment in body["message"]


def test_reserved_headers_and_unknown_event_types_are_refused(owner_api):
    response = owner_api.post(
        "/api/v1/webhooks",
        {"url": "https://hooks.example.com/x", "headers": {"webhook-signature": "forged"}},
        format="json",
    )
    assert response.status_code == 400
    assert "headers" in response.json()["message"]
    response = owner_api.post(
        "/api/v1/webhooks",
        {"url": "https://hooks.example.com/x", "event_types": ["cluster.exploded"]},
        format="json",
    )
    assert response.status_code == 400
    assert "event_types" in response.json()["message"]


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_members_and_viewers_cannot_see_or_manage_webhooks(client_for, org, role):
    user = MembershipFactory(organization=org, role=role).user
    endpoint = _endpoint(org)
    client = client_for(user, org)
    assert client.get("/api/v1/webhooks").status_code == 403
    assert client.post(f"/api/v1/webhooks/{endpoint.pk}/test").status_code == 403


def test_another_orgs_endpoint_deliveries_and_redelivery_are_not_found(owner_api, org, other_org):
    theirs = _endpoint(other_org)
    delivery = services.webhook_test_send(endpoint=theirs)
    mine = _endpoint(org)
    paths = [
        ("get", f"/api/v1/webhooks/{theirs.pk}"),
        ("patch", f"/api/v1/webhooks/{theirs.pk}"),
        ("delete", f"/api/v1/webhooks/{theirs.pk}"),
        ("post", f"/api/v1/webhooks/{theirs.pk}/rotate-secret"),
        ("post", f"/api/v1/webhooks/{theirs.pk}/test"),
        ("get", f"/api/v1/webhooks/{theirs.pk}/deliveries"),
        ("get", f"/api/v1/webhooks/{theirs.pk}/deliveries/{delivery.pk}"),
        ("post", f"/api/v1/webhooks/{theirs.pk}/deliveries/{delivery.pk}/attempts"),
        # Their delivery through my endpoint's path.
        ("get", f"/api/v1/webhooks/{mine.pk}/deliveries/{delivery.pk}"),
        ("post", f"/api/v1/webhooks/{mine.pk}/deliveries/{delivery.pk}/attempts"),
    ]
    for method, path in paths:
        response = getattr(owner_api, method)(path, {}, format="json")
        assert response.status_code == 404, (method, path, response.status_code)
    assert [e["id"] for e in owner_api.get("/api/v1/webhooks").json()] == [str(mine.pk)]
    assert WebhookEndpoint.objects.filter(pk=theirs.pk).exists()
    assert WebhookDelivery.objects.get(pk=delivery.pk).attempts == 0


def test_the_delivery_log_lists_inspects_and_redelivers(owner_api, org, receiver, endpoint_for):
    endpoint = endpoint_for(receiver)
    sent = owner_api.post(f"/api/v1/webhooks/{endpoint.pk}/test")
    assert sent.status_code == 202
    delivery_id = sent.json()["id"]
    services.webhook_delivery_attempt(delivery_id=delivery_id)

    listed = owner_api.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries").json()
    assert [(d["id"], d["event_type"], d["status"]) for d in listed] == [
        (delivery_id, "webhook.test", "succeeded")
    ]
    detail = owner_api.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries/{delivery_id}").json()
    assert detail["payload"]["endpoint_id"] == str(endpoint.pk)
    [attempt] = detail["attempts_log"]
    assert (attempt["outcome"], attempt["response_status"]) == ("succeeded", 204)

    again = owner_api.post(f"/api/v1/webhooks/{endpoint.pk}/deliveries/{delivery_id}/attempts")
    assert again.status_code == 202
    assert again.json()["status"] == "pending"
    services.webhook_delivery_attempt(delivery_id=delivery_id)
    assert len(receiver.requests) == 2
    assert receiver.unique_ids == {detail["event_id"]}


def test_a_malformed_delivery_id_is_a_400_not_a_500(owner_api, org):
    endpoint = _endpoint(org)
    response = owner_api.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries/nope")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_delivery_id"


def test_disabling_and_enabling_by_patch(owner_api, org):
    endpoint = _endpoint(org)
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(disabled_reason="failing")
    response = owner_api.patch(f"/api/v1/webhooks/{endpoint.pk}", {"enabled": True}, format="json")
    assert response.status_code == 200
    assert response.json()["disabled_reason"] == ""
    assert owner_api.delete(f"/api/v1/webhooks/{endpoint.pk}").status_code == 204
    assert not WebhookEndpoint.objects.exists()


def test_private_targets_and_other_ports_are_allowed_when_the_operator_says_so(owner_api, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOK_ALLOWED_PORTS = [443, 8443, 9443]
    for url in ("https://10.0.0.5/x", "https://[fd12:3456::1]:9443/x"):
        assert owner_api.post("/api/v1/webhooks", {"url": url}, format="json").status_code == 201


def test_a_denied_range_is_refused_even_when_private_targets_are_allowed(owner_api, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOK_TARGET_DENY_CIDRS = ["10.20.0.0/16"]
    response = owner_api.post("/api/v1/webhooks", {"url": "https://10.20.3.4/x"}, format="json")
    assert response.status_code == 400
    assert "denied range" in response.json()["message"]


def test_rotating_again_during_the_overlap_is_refused_unless_forced(owner_api, org):
    endpoint = _endpoint(org)
    url = f"/api/v1/webhooks/{endpoint.pk}/rotate-secret"
    assert owner_api.post(url, {"overlap_seconds": 600}, format="json").status_code == 200

    refused = owner_api.post(url, {"overlap_seconds": 600}, format="json")
    assert refused.status_code == 409
    assert refused.json()["code"] == "rotation_in_progress"
    endpoint.refresh_from_db()
    original = endpoint.previous_secret

    forced = owner_api.post(url, {"overlap_seconds": 600, "force": True}, format="json")
    assert forced.status_code == 200
    endpoint.refresh_from_db()
    assert endpoint.previous_secret != original


def test_the_url_token_stays_out_of_the_audit_log_and_headers_do_not_follow_a_new_host(
    owner_api, org
):
    from apps.audit.models import AuditEntry

    created = owner_api.post(
        "/api/v1/webhooks",
        {"url": "https://hooks.example.com/h/TOKEN-CANARY-1", "headers": {"X-Auth": "k"}},
        format="json",
    )
    pk = created.json()["id"]
    moved = owner_api.patch(
        f"/api/v1/webhooks/{pk}",
        {"url": "https://other.example.net/h?t=TOKEN-CANARY-2"},
        format="json",
    )
    assert moved.status_code == 200

    entries = AuditEntry.objects.filter(object_id=pk)
    logged = json.dumps([[e.object_repr, e.changes] for e in entries], ensure_ascii=False)
    assert entries.count() == 2
    assert "TOKEN-CANARY" not in logged
    assert "https://other.example.net/…" in logged
    endpoint = WebhookEndpoint.objects.get(pk=pk)
    assert services.webhook_endpoint_headers(endpoint) == {}


def test_an_organization_cannot_have_more_endpoints_than_the_limit(owner_api, org, settings):
    settings.WEBHOOK_MAX_ENDPOINTS_PER_ORG = 2
    for index in range(2):
        url = f"https://hooks.example.com/{index}"
        assert owner_api.post("/api/v1/webhooks", {"url": url}, format="json").status_code == 201

    refused = owner_api.post(
        "/api/v1/webhooks", {"url": "https://hooks.example.com/3"}, format="json"
    )

    assert refused.status_code == 400
    assert "2 webhook endpoints" in refused.json()["message"]
    assert WebhookEndpoint.objects.filter(organization=org).count() == 2


def test_test_events_and_redeliveries_share_a_per_organization_limit(
    owner_api, org, other_org, settings
):
    settings.WEBHOOK_MANUAL_SEND_RATE_LIMIT = "2/h"
    endpoint = _endpoint(org)
    first = owner_api.post(f"/api/v1/webhooks/{endpoint.pk}/test")
    assert first.status_code == 202
    delivery_id = first.json()["id"]
    again = owner_api.post(f"/api/v1/webhooks/{endpoint.pk}/deliveries/{delivery_id}/attempts")
    assert again.status_code == 202

    for path in (
        f"/api/v1/webhooks/{endpoint.pk}/test",
        f"/api/v1/webhooks/{endpoint.pk}/deliveries/{delivery_id}/attempts",
    ):
        refused = owner_api.post(path)
        assert refused.status_code == 429, path
        assert refused.json()["code"] == "rate_limited"
        assert 0 < int(refused["Retry-After"]) <= 3600
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 1
    # Another organization has a budget of its own.
    services.webhook_test_send(endpoint=_endpoint(other_org))


def test_a_redelivery_refused_as_in_progress_uses_none_of_the_budget(owner_api, org, settings):
    settings.WEBHOOK_MANUAL_SEND_RATE_LIMIT = "2/h"
    endpoint = _endpoint(org)
    delivery_id = owner_api.post(f"/api/v1/webhooks/{endpoint.pk}/test").json()["id"]
    path = f"/api/v1/webhooks/{endpoint.pk}/deliveries/{delivery_id}/attempts"
    WebhookDelivery.objects.filter(pk=delivery_id).update(status=WebhookDelivery.Status.DELIVERING)

    busy = [owner_api.post(path).status_code for _ in range(3)]

    assert busy == [409, 409, 409]
    WebhookDelivery.objects.filter(pk=delivery_id).update(status=WebhookDelivery.Status.FAILED)
    assert owner_api.post(path).status_code == 202  # the second of two
    refused = owner_api.post(path)
    assert refused.status_code == 429
    # The refused one moved nothing: the delivery waits as the accepted redelivery left it.
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert delivery.status == WebhookDelivery.Status.PENDING
    WebhookDelivery.objects.filter(pk=delivery_id).update(status=WebhookDelivery.Status.FAILED)
    assert owner_api.post(path).status_code == 429
    assert WebhookDelivery.objects.get(pk=delivery_id).status == WebhookDelivery.Status.FAILED

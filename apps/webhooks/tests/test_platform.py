"""The platform's own webhook endpoints: platform admins manage them on /api/v1/admin/webhooks
and in the console; they receive platform events (backups, the platform's audit chain) and no
organization's, and organizations' endpoints receive none of theirs; nobody else reaches them."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from apps.accounts.tests.factories import UserFactory
from apps.audit.models import PLATFORM_CHAIN, AuditEntry
from apps.core.crypto.rotation import data_key_rotate, secrets_reencrypt
from apps.jobs.services import job_enqueue
from apps.jobs.tests.support import run_queued
from apps.maintenance.tests.conftest import backup_bucket  # noqa: F401 - a fixture used below
from apps.orgs.tests.admin_support import console_for, form_data, staff_of
from apps.orgs.tests.factories import MembershipFactory
from apps.webhooks import services
from apps.webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db

PLATFORM = "/api/v1/admin/webhooks"


@pytest.fixture
def rita(db):
    """A platform admin, in no organization."""
    return UserFactory(primary_email="rita@autoglue.example", is_admin=True)


@pytest.fixture
def root_api(client_for, rita):
    return client_for(rita)


def _platform_endpoint(url="https://hooks.example.com/platform", **kwargs) -> WebhookEndpoint:
    endpoint, _ = services.webhook_endpoint_create(organization=None, url=url, **kwargs)
    return endpoint


def _attempt_due(endpoint: WebhookEndpoint) -> list[str]:
    return [
        services.webhook_delivery_attempt(delivery_id=pk)
        for pk in WebhookDelivery.objects.filter(endpoint=endpoint).values_list("pk", flat=True)
    ]


# --- events on real parts ------------------------------------------------------------------------


def test_a_failed_backup_reaches_a_platform_endpoint_signed_and_no_organization_s(
    org, receiver, endpoint_for, settings
):
    settings.BACKUP_S3_BUCKET = ""  # the real backup job fails readably without a bucket
    settings.AUTOGLUE_BACKUP_KEYS = "k:" + "A" * 43 + "="
    platform = endpoint_for(receiver, organization=None)
    everything = endpoint_for(receiver)  # the organization's, wanting every event

    job = job_enqueue(kind="backup")
    assert run_queued("backup") == ["failed"]

    assert _attempt_due(platform) == ["succeeded"]
    assert not WebhookDelivery.objects.filter(endpoint=everything).exists()
    assert receiver.bad_signatures == 0
    [request] = receiver.requests
    payload = json.loads(request["body"])
    assert payload["type"] == "backup.failed"
    assert payload["organization_id"] is None
    assert payload["data"] == {"job_id": str(job.pk), "kind": "backup", "status": "failed"}
    assert "BACKUP_S3_BUCKET" not in request["body"].decode()  # the job's error stays out
    [secret] = [s for s in receiver.secrets if receiver.verified_by(s, request)]
    assert secret  # signed by the platform endpoint's secret


def test_a_backup_that_succeeds_reaches_a_platform_endpoint(
    backup_bucket,  # noqa: F811 - the fixture imported above
    receiver,
    endpoint_for,
):
    platform = endpoint_for(receiver, organization=None, event_types=["backup.succeeded"])
    job_enqueue(kind="backup")
    assert run_queued("backup") == ["succeeded"]

    assert _attempt_due(platform) == ["succeeded"]
    [request] = receiver.requests
    assert json.loads(request["body"])["type"] == "backup.succeeded"
    assert receiver.bad_signatures == 0


def test_a_platform_endpoint_gets_no_organization_s_events(org, receiver, endpoint_for):
    platform = endpoint_for(receiver, organization=None)
    mine = endpoint_for(receiver)
    MembershipFactory(organization=org, role="member")

    assert not WebhookDelivery.objects.filter(endpoint=platform).exists()
    assert _attempt_due(mine) == ["succeeded"]
    assert [json.loads(r["body"])["type"] for r in receiver.requests] == ["member.added"]


def test_a_platform_endpoint_s_secret_and_headers_are_under_the_platform_data_key(receiver):
    endpoint, secret = services.webhook_endpoint_create(
        organization=None,
        url=receiver.url,
        headers={"Authorization": "Bearer CANARY-platform-header"},
    )
    receiver.secrets.append(secret)
    stored = WebhookEndpoint.objects.filter(pk=endpoint.pk).values_list("secret", "headers").get()
    assert secret not in "".join(stored) and "CANARY" not in "".join(stored)

    data_key_rotate(organization_id=None)
    assert secrets_reencrypt(organization_id=None).failures == []
    assert (
        WebhookEndpoint.objects.filter(pk=endpoint.pk).values_list("secret", flat=True).get()
        != (stored[0])
    )

    delivery = services.webhook_test_send(endpoint=WebhookEndpoint.objects.get(pk=endpoint.pk))
    assert services.webhook_delivery_attempt(delivery_id=delivery.pk) == "succeeded"
    [request] = receiver.requests
    assert receiver.verified_by(secret, request)
    assert request["headers"]["authorization"] == "Bearer CANARY-platform-header"


def test_the_platform_has_the_endpoint_cap_too(root_api, settings):
    settings.WEBHOOK_MAX_ENDPOINTS_PER_ORG = 1
    _platform_endpoint()
    response = root_api.post(PLATFORM, {"url": "https://hooks.example.com/2"}, format="json")
    assert response.status_code == 400
    assert "the platform already has 1" in response.json()["message"]


# --- the API -------------------------------------------------------------------------------------


def test_a_platform_admin_manages_platform_endpoints_with_the_org_routes_shapes(
    root_api, org, receiver, plain_http
):
    created = root_api.post(
        PLATFORM, {"url": receiver.url, "event_types": ["backup.failed"]}, format="json"
    )
    assert created.status_code == 201, created.content
    assert created["Cache-Control"] == "no-store"
    body = created.json()
    assert body["secret"].startswith("whsec_")
    endpoint = WebhookEndpoint.objects.get(pk=body["id"])
    assert endpoint.organization_id is None
    [entry] = AuditEntry.objects.filter(object_id=str(endpoint.pk))
    assert (entry.organization_id, entry.chain) == (None, PLATFORM_CHAIN)
    assert body["secret"] not in json.dumps(entry.changes)
    org_endpoint, _ = services.webhook_endpoint_create(
        organization=org, url="https://hooks.example.com/acme"
    )

    listed = root_api.get(PLATFORM).json()
    assert [e["id"] for e in listed] == [body["id"]]  # no organization's endpoint
    assert body["secret"] not in json.dumps(listed)
    assert root_api.get(f"{PLATFORM}/{org_endpoint.pk}").status_code == 404
    changed = root_api.patch(f"{PLATFORM}/{body['id']}", {"description": "ops"}, format="json")
    assert changed.status_code == 200 and changed.json()["description"] == "ops"
    rotated = root_api.post(f"{PLATFORM}/{body['id']}/rotate-secret", {}, format="json")
    assert rotated.status_code == 200 and rotated.json()["secret"] != body["secret"]

    sent = root_api.post(f"{PLATFORM}/{body['id']}/test")
    assert sent.status_code == 202
    delivery_id = sent.json()["id"]
    receiver.secrets.append(rotated.json()["secret"])
    assert services.webhook_delivery_attempt(delivery_id=delivery_id) == "succeeded"
    log = root_api.get(f"{PLATFORM}/{body['id']}/deliveries").json()
    assert [(d["id"], d["event_type"], d["status"]) for d in log] == [
        (delivery_id, "webhook.test", "succeeded")
    ]
    detail = root_api.get(f"{PLATFORM}/{body['id']}/deliveries/{delivery_id}").json()
    assert [a["outcome"] for a in detail["attempts_log"]] == ["succeeded"]
    again = root_api.post(f"{PLATFORM}/{body['id']}/deliveries/{delivery_id}/attempts")
    assert again.status_code == 202 and again.json()["status"] == "pending"
    assert root_api.delete(f"{PLATFORM}/{body['id']}").status_code == 204
    assert not WebhookEndpoint.objects.filter(pk=body["id"]).exists()
    assert WebhookEndpoint.objects.filter(pk=org_endpoint.pk).exists()


@pytest.mark.parametrize("role", ["owner", "admin", "member", "viewer"])
def test_an_organization_s_people_reach_no_platform_endpoint(client_for, org, role):
    person = MembershipFactory(organization=org, role=role).user
    client = client_for(person, org)
    platform = _platform_endpoint()
    delivery = services.webhook_test_send(endpoint=platform)
    before = WebhookDelivery.objects.get(pk=delivery.pk).updated_at
    platform_paths = [
        ("get", PLATFORM),
        ("post", PLATFORM),
        ("get", f"{PLATFORM}/{platform.pk}"),
        ("patch", f"{PLATFORM}/{platform.pk}"),
        ("delete", f"{PLATFORM}/{platform.pk}"),
        ("post", f"{PLATFORM}/{platform.pk}/rotate-secret"),
        ("post", f"{PLATFORM}/{platform.pk}/test"),
        ("get", f"{PLATFORM}/{platform.pk}/deliveries"),
        ("get", f"{PLATFORM}/{platform.pk}/deliveries/{delivery.pk}"),
        ("post", f"{PLATFORM}/{platform.pk}/deliveries/{delivery.pk}/attempts"),
    ]
    body = {"description": "hijacked", "url": "https://evil.example.com/"}
    for method, path in platform_paths:
        response = getattr(client, method)(path, body, format="json")
        assert response.status_code == 403, (method, path, response.status_code)
    # Nor through the organization's own routes, which know only the organization's rows.
    org_paths = [
        ("get", f"/api/v1/webhooks/{platform.pk}"),
        ("patch", f"/api/v1/webhooks/{platform.pk}"),
        ("delete", f"/api/v1/webhooks/{platform.pk}"),
        ("post", f"/api/v1/webhooks/{platform.pk}/test"),
        ("get", f"/api/v1/webhooks/{platform.pk}/deliveries/{delivery.pk}"),
        ("post", f"/api/v1/webhooks/{platform.pk}/deliveries/{delivery.pk}/attempts"),
    ]
    want = 404 if role in ("owner", "admin") else 403
    for method, path in org_paths:
        response = getattr(client, method)(path, body, format="json")
        assert response.status_code == want, (method, path, response.status_code)
    if role in ("owner", "admin"):
        assert client.get("/api/v1/webhooks").json() == []
    platform.refresh_from_db()
    assert (platform.description, platform.url) == ("", "https://hooks.example.com/platform")
    assert WebhookDelivery.objects.get(pk=delivery.pk).updated_at == before
    assert WebhookEndpoint.objects.filter(organization__isnull=True).count() == 1


def test_an_org_key_is_no_platform_admin(org_key_client, org):
    assert org_key_client(org).get(PLATFORM).status_code == 403


# --- the console ---------------------------------------------------------------------------------


def test_a_platform_admin_adds_a_platform_endpoint_in_the_console_and_sees_its_log(rita):
    console = console_for(rita)
    response = console.post(
        reverse("admin:webhooks_webhookendpoint_add"),
        {"organization": "", "url": "https://hooks.example.com/ops", "enabled": "on"},
    )
    assert response.status_code == 200, response.content[:2000]
    assert response.context["secret"].startswith("whsec_")
    endpoint = WebhookEndpoint.objects.get(url="https://hooks.example.com/ops")
    assert endpoint.organization_id is None

    sent = console.post(reverse("admin:webhooks_webhookendpoint_send_test", args=[endpoint.pk]))
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert sent.status_code == 302 and str(delivery.pk) in sent["Location"]
    listed = console.get(reverse("admin:webhooks_webhookdelivery_changelist") + "?owner=platform")
    assert listed.status_code == 200
    assert [d.pk for d in listed.context["cl"].result_list] == [delivery.pk]
    page = console.get(reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk]))
    assert page.status_code == 200 and "the platform" in page.content.decode()


def test_a_platform_admin_changes_and_rotates_a_platform_endpoint_in_the_console(rita):
    console = console_for(rita)
    endpoint = _platform_endpoint()
    url = reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk])
    data = form_data(console.get(url))
    data["description"] = "on-call"
    assert console.post(url, data).status_code == 302
    endpoint.refresh_from_db()
    assert (endpoint.description, endpoint.organization_id) == ("on-call", None)

    old_secret = endpoint.secret
    rotate = reverse("admin:webhooks_webhookendpoint_rotate", args=[endpoint.pk])
    shown = console.post(rotate, {"overlap_hours": 1})
    assert shown.status_code == 200 and shown.context["secret"].startswith("whsec_")
    endpoint.refresh_from_db()
    assert endpoint.secret == shown.context["secret"] != old_secret


def test_an_owner_cannot_add_a_platform_endpoint_by_leaving_the_organization_empty(org):
    olivia = console_for(staff_of(org, "owner", "olivia@acme.example"))
    response = olivia.post(
        reverse("admin:webhooks_webhookendpoint_add"),
        {"organization": "", "url": "https://hooks.example.com/sneaky", "enabled": "on"},
    )
    assert response.status_code == 200
    assert "organization" in response.context["adminform"].form.errors
    assert not WebhookEndpoint.objects.filter(url="https://hooks.example.com/sneaky").exists()


def test_an_owner_sees_no_platform_endpoint_or_delivery_in_the_console(org):
    olivia = console_for(staff_of(org, "owner", "olivia@acme.example"))
    platform = _platform_endpoint()
    delivery = services.webhook_test_send(endpoint=platform)
    before = WebhookDelivery.objects.get(pk=delivery.pk).updated_at
    mine, _ = services.webhook_endpoint_create(
        organization=org, url="https://hooks.example.com/acme"
    )

    endpoints = olivia.get(reverse("admin:webhooks_webhookendpoint_changelist"))
    assert [e.pk for e in endpoints.context["cl"].result_list] == [mine.pk]
    deliveries = olivia.get(reverse("admin:webhooks_webhookdelivery_changelist"))
    assert list(deliveries.context["cl"].result_list) == []
    for name, pk in [
        ("admin:webhooks_webhookendpoint_change", platform.pk),
        ("admin:webhooks_webhookdelivery_change", delivery.pk),
    ]:
        response = olivia.get(reverse(name, args=[pk]))
        assert response.status_code == 302, name  # "not found": back to the index
    for name, pk in [
        ("admin:webhooks_webhookendpoint_send_test", platform.pk),
        ("admin:webhooks_webhookdelivery_redeliver", delivery.pk),
    ]:
        assert olivia.post(reverse(name, args=[pk])).status_code == 404, name
    assert olivia.get(
        reverse("admin:webhooks_webhookendpoint_rotate", args=[platform.pk])
    ).status_code == (404)
    action = olivia.post(
        reverse("admin:webhooks_webhookdelivery_changelist"),
        {"action": "redeliver", "_selected_action": [str(delivery.pk)]},
    )
    assert action.status_code in (200, 302)
    assert WebhookDelivery.objects.filter(endpoint=platform).count() == 1
    assert WebhookDelivery.objects.get(pk=delivery.pk).updated_at == before


def test_the_platform_s_test_events_have_a_budget_of_their_own(root_api, org, settings):
    settings.WEBHOOK_MANUAL_SEND_RATE_LIMIT = "1/h"
    platform = _platform_endpoint()
    assert root_api.post(f"{PLATFORM}/{platform.pk}/test").status_code == 202
    refused = root_api.post(f"{PLATFORM}/{platform.pk}/test")
    assert refused.status_code == 429 and "the platform" in refused.json()["message"]
    mine, _ = services.webhook_endpoint_create(
        organization=org, url="https://hooks.example.com/acme"
    )
    services.webhook_test_send(endpoint=mine)  # the organization's budget is untouched


# --- optimistic concurrency, as on /webhooks ---------------------------------------------------


def test_a_platform_endpoint_s_read_and_create_carry_the_etag_its_writes_check(root_api):
    created = root_api.post(PLATFORM, {"url": "https://hooks.example.com/p"}, format="json")
    url = f"{PLATFORM}/{created.json()['id']}"

    read = root_api.get(url)

    assert created["ETag"] == read["ETag"]
    assert read["ETag"].startswith('"') and read["ETag"].endswith('"')
    changed = root_api.patch(url, {"description": "a"}, format="json", HTTP_IF_MATCH=read["ETag"])
    assert changed.status_code == 200
    assert changed["ETag"] == root_api.get(url)["ETag"] != read["ETag"]


def test_a_stale_if_match_on_a_platform_endpoint_is_412_and_changes_nothing(root_api):
    endpoint = _platform_endpoint()
    url = f"{PLATFORM}/{endpoint.pk}"
    stale = root_api.get(url)["ETag"]
    assert root_api.patch(url, {"description": "a"}, format="json").status_code == 200

    patched = root_api.patch(url, {"description": "b"}, format="json", HTTP_IF_MATCH=stale)
    deleted = root_api.delete(url, HTTP_IF_MATCH=stale)

    assert (patched.status_code, deleted.status_code) == (412, 412)
    assert patched.json()["code"] == deleted.json()["code"] == "precondition_failed"
    endpoint.refresh_from_db()
    assert endpoint.description == "a"
    assert root_api.delete(url, HTTP_IF_MATCH=root_api.get(url)["ETag"]).status_code == 204
    assert not WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_the_console_s_refusal_past_the_limit_reads_as_the_docs_quote_it(rita, settings):
    settings.WEBHOOK_MANUAL_SEND_RATE_LIMIT = "1/h"
    console = console_for(rita)
    endpoint = _platform_endpoint()
    send = reverse("admin:webhooks_webhookendpoint_send_test", args=[endpoint.pk])
    console.post(send)

    page = console.post(send, follow=True).content.decode()

    # The API's message, its first letter capitalised as the console shows every message.
    assert re.search(
        r"Too many test events and redeliveries for the platform; try again in \d+ s", page
    )
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 1

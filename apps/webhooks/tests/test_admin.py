"""The console's webhook pages, through the same services as the API: the secret shown once,
rotation asks first, a test event and redelivery from buttons, owners and admins only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.orgs.tests.admin_support import console_for, staff_of
from apps.orgs.tests.factories import MembershipFactory
from apps.webhooks import services
from apps.webhooks.models import WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def olivia(org):
    return console_for(staff_of(org, "owner", "olivia@acme.example"))


def _endpoint(org):
    endpoint, _ = services.webhook_endpoint_create(
        organization=org, url="https://hooks.example.com/autoglue"
    )
    return endpoint


def test_a_new_endpoint_shows_its_secret_once_and_never_again(olivia, org):
    response = olivia.post(
        reverse("admin:webhooks_webhookendpoint_add"),
        {
            "organization": str(org.pk),
            "url": "https://hooks.example.com/new",
            "description": "chat",
            "event_types": ["cluster_run.failed", "member.added"],
            "enabled": "on",
            "headers": '{"Authorization": "Bearer CANARY-console"}',
        },
    )
    assert response.status_code == 200, response.content[:2000]
    assert "no-store" in response["Cache-Control"]
    secret = response.context["secret"]
    assert secret.startswith("whsec_") and secret in response.content.decode()
    endpoint = WebhookEndpoint.objects.get(url="https://hooks.example.com/new")
    assert endpoint.event_types == ["cluster_run.failed", "member.added"]
    assert services.webhook_endpoint_headers(endpoint) == {"Authorization": "Bearer CANARY-console"}

    page = olivia.get(reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk]))
    assert page.status_code == 200
    assert secret not in page.content.decode()
    assert "CANARY" not in page.content.decode()


def test_the_console_refuses_a_url_the_api_refuses(olivia, org, settings):
    settings.AUTOGLUE_ALLOW_LOOPBACK_TARGETS = False
    response = olivia.post(
        reverse("admin:webhooks_webhookendpoint_add"),
        {"organization": str(org.pk), "url": "https://169.254.169.254/latest", "enabled": "on"},
    )
    assert response.status_code == 200
    assert "link-local" in str(response.context["adminform"].form.errors)
    assert not WebhookEndpoint.objects.exists()


def test_rotating_asks_first_then_shows_the_new_secret(olivia, org):
    endpoint = _endpoint(org)
    before = WebhookEndpoint.objects.get(pk=endpoint.pk).secret
    url = reverse("admin:webhooks_webhookendpoint_rotate", args=[endpoint.pk])

    asked = olivia.get(url)
    assert asked.status_code == 200
    assert "Yes, rotate the secret" in asked.content.decode()
    assert WebhookEndpoint.objects.get(pk=endpoint.pk).secret == before

    done = olivia.post(url, {"overlap_hours": "2"})
    assert done.status_code == 200
    endpoint.refresh_from_db()
    assert done.context["secret"] == endpoint.secret != before
    assert endpoint.previous_secret == before


def test_send_a_test_event_and_redeliver_from_the_buttons(olivia, org):
    endpoint = _endpoint(org)
    sent = olivia.post(reverse("admin:webhooks_webhookendpoint_send_test", args=[endpoint.pk]))
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert sent.status_code == 302
    assert delivery.event.type == "webhook.test"
    page = olivia.get(reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk]))
    assert page.status_code == 200 and "Redeliver" in page.content.decode()

    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="failed", attempts=10)
    again = olivia.post(reverse("admin:webhooks_webhookdelivery_redeliver", args=[delivery.pk]))
    assert again.status_code == 302
    assert WebhookDelivery.objects.get(pk=delivery.pk).status == "pending"


def test_members_do_not_reach_the_webhook_pages(org):
    endpoint = _endpoint(org)
    delivery = services.webhook_test_send(endpoint=endpoint)
    alice = console_for(staff_of(org, "member", "alice@acme.example"))
    before = WebhookDelivery.objects.count()  # Alice joining is an event too
    for url in (
        reverse("admin:webhooks_webhookendpoint_changelist"),
        reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk]),
        reverse("admin:webhooks_webhookendpoint_rotate", args=[endpoint.pk]),
        reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk]),
    ):
        assert alice.get(url).status_code in (302, 403, 404), url
    posted = alice.post(reverse("admin:webhooks_webhookdelivery_redeliver", args=[delivery.pk]))
    assert posted.status_code in (403, 404)
    assert alice.post(
        reverse("admin:webhooks_webhookendpoint_send_test", args=[endpoint.pk])
    ).status_code in (403, 404)
    assert WebhookDelivery.objects.count() == before


def test_another_organizations_endpoint_cannot_be_rotated_or_tested(olivia, other_org):
    theirs = _endpoint(other_org)
    before = theirs.secret
    rotate = reverse("admin:webhooks_webhookendpoint_rotate", args=[theirs.pk])
    assert olivia.post(rotate, {"overlap_hours": "1"}).status_code == 404
    test = reverse("admin:webhooks_webhookendpoint_send_test", args=[theirs.pk])
    assert olivia.post(test).status_code == 404
    assert WebhookEndpoint.objects.get(pk=theirs.pk).secret == before
    assert not WebhookDelivery.objects.exists()


def test_the_attempt_log_shows_the_answer_escaped_and_cut_short(olivia, org):
    from django.utils import timezone

    from apps.webhooks.models import WebhookAttempt

    delivery = services.webhook_test_send(endpoint=_endpoint(org))
    WebhookAttempt.objects.create(
        organization=org,
        delivery=delivery,
        number=1,
        started_at=timezone.now(),
        outcome="failed",
        response_status=500,
        response_body="<script>alert(1)</script>upstream broke" + "y" * 900 + "TAIL",
    )

    page = olivia.get(reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk]))

    text = page.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;upstream broke" in text
    assert "<script>alert(1)" not in text
    assert "TAIL" not in text


def test_the_console_refuses_an_endpoint_beyond_the_limit_on_the_form(olivia, org, settings):
    settings.WEBHOOK_MAX_ENDPOINTS_PER_ORG = 1
    _endpoint(org)
    response = olivia.post(
        reverse("admin:webhooks_webhookendpoint_add"),
        {"organization": str(org.pk), "url": "https://hooks.example.com/more", "enabled": "on"},
    )
    assert response.status_code == 200
    assert "1 webhook endpoints, the most allowed" in response.content.decode()
    assert WebhookEndpoint.objects.filter(organization=org).count() == 1


def test_the_console_s_test_events_and_redeliveries_count_against_the_api_s_limit(
    olivia, org, owner_api_for_limit, settings
):
    settings.WEBHOOK_MANUAL_SEND_RATE_LIMIT = "2/h"
    endpoint = _endpoint(org)
    assert owner_api_for_limit.post(f"/api/v1/webhooks/{endpoint.pk}/test").status_code == 202
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    olivia.post(reverse("admin:webhooks_webhookdelivery_redeliver", args=[delivery.pk]))

    response = olivia.post(
        reverse("admin:webhooks_webhookendpoint_send_test", args=[endpoint.pk]), follow=True
    )
    assert "too many test events and redeliveries" in response.content.decode().lower()
    assert WebhookDelivery.objects.filter(endpoint=endpoint).count() == 1
    response = olivia.post(
        reverse("admin:webhooks_webhookdelivery_redeliver", args=[delivery.pk]), follow=True
    )
    assert "too many test events and redeliveries" in response.content.decode().lower()


@pytest.fixture
def owner_api_for_limit(client_for, org):
    return client_for(MembershipFactory(organization=org, role="owner").user, org)


def test_bulk_redeliver_skips_only_the_owner_over_its_limit_and_says_which(
    org, other_org, settings
):
    settings.WEBHOOK_MANUAL_SEND_RATE_LIMIT = "2/h"
    person = staff_of(org, "owner", "olga@acme.example")
    MembershipFactory(user=person, organization=other_org, role="owner")
    console = console_for(person)
    globex = _endpoint(other_org)
    for _ in range(2):
        services.webhook_event_record(
            type="webhook.test", organization_id=other_org.pk, data={}, endpoints=[globex]
        )
    acme = _endpoint(org)
    for _ in range(2):  # Acme's budget, spent; its deliveries are the newest, so listed first
        services.webhook_test_send(endpoint=acme)
    WebhookDelivery.objects.update(status=WebhookDelivery.Status.FAILED)
    acme_ids = sorted(str(pk) for pk in acme.deliveries.values_list("pk", flat=True))

    response = console.post(
        reverse("admin:webhooks_webhookdelivery_changelist"),
        {
            "action": "redeliver",
            "_selected_action": [
                str(pk) for pk in WebhookDelivery.objects.values_list("pk", flat=True)
            ],
        },
        follow=True,
    )

    statuses: dict = {}
    for delivery in WebhookDelivery.objects.all():
        statuses.setdefault(delivery.endpoint_id, set()).add(delivery.status)
    assert statuses == {
        acme.pk: {WebhookDelivery.Status.FAILED},
        globex.pk: {WebhookDelivery.Status.PENDING},
    }
    page = response.content.decode()
    assert "2 delivery(ies) sent again." in page
    [refusal] = [m for m in page.splitlines() if "too many test events" in m]
    assert "Acme" in refusal and "Globex" not in refusal
    assert all(pk in refusal for pk in acme_ids)  # each skipped delivery named

"""The tenancy layer, exercised through a throwaway OrgScopedViewSet (PostHog's test_routing
idea), and a guard that every tenant route goes through that base class."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

from apps.core.api.viewsets import OrgScopedViewSet
from apps.orgs.models import Membership
from apps.orgs.tests.factories import MembershipFactory, OrganizationFactory

pytestmark = pytest.mark.urls("apps.orgs.tests.tenancy_urls")

# Routes that are public or about the person rather than an organization's resources.
NON_TENANT_PREFIXES = (
    "healthz",
    "readyz",
    "version",
    ".well-known",
    "auth/",
    "me",
    "orgs",
    "admin/",
    "openapi",
    "docs",
)


def _walk(patterns, prefix=""):
    for entry in patterns:
        route = prefix + str(entry.pattern).lstrip("^").replace("\\", "")
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            yield route, entry.callback


@pytest.mark.urls("autoglue.urls")
def test_every_tenant_route_is_an_org_scoped_viewset():
    offenders, checked = [], 0
    for route, callback in _walk(get_resolver().url_patterns):
        if not route.startswith("api/v1/"):
            continue
        rest = route.removeprefix("api/v1/")
        if not rest or rest.startswith(NON_TENANT_PREFIXES):
            continue
        checked += 1
        view = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        if view is None or not issubclass(view, OrgScopedViewSet):
            offenders.append(route)
    assert checked > 0, "the walk found no tenant routes at all"
    assert offenders == [], f"tenant routes outside OrgScopedViewSet: {offenders}"


def test_a_non_member_org_header_is_403_org_forbidden(client_for, member, other_org):
    response = client_for(member, other_org).get("/api/v1/things")
    assert response.status_code == 403 and response.json()["code"] == "org_forbidden"


def test_a_malformed_org_header_is_400_invalid_org_id(client_for, member):
    client = client_for(member)
    client.credentials(HTTP_X_ORG_ID="not-a-uuid")
    response = client.get("/api/v1/things")
    assert response.status_code == 400 and response.json()["code"] == "invalid_org_id"


def test_no_header_with_two_memberships_is_403_org_required(client_for, member):
    MembershipFactory(user=member)
    response = client_for(member).get("/api/v1/things")
    assert response.status_code == 403 and response.json()["code"] == "org_required"


def test_no_header_with_one_membership_uses_it(client_for, member, org):
    response = client_for(member).get("/api/v1/things")
    assert response.status_code == 200
    ids = {row["id"] for row in response.json()}
    assert ids == {str(m.pk) for m in Membership.objects.filter(organization=org)}


def test_an_org_key_ignores_the_org_header(org_key_client, org, other_org, member):
    client = org_key_client(org)
    client.credentials(HTTP_X_ORG_ID=str(other_org.pk))
    response = client.get("/api/v1/things")
    assert response.status_code == 200
    assert {r["id"] for r in response.json()} == {
        str(m.pk) for m in Membership.objects.filter(organization=org)
    }


def test_another_orgs_object_is_404(api, outsider, other_org):
    foreign = Membership.objects.get(user=outsider, organization=other_org)
    response = api.get(f"/api/v1/things/{foreign.pk}")
    assert response.status_code == 404 and response.json()["code"] == "thing_not_found"


def test_another_orgs_object_is_404_for_an_org_key_too(org_key_client, org, outsider, other_org):
    foreign = Membership.objects.get(user=outsider, organization=other_org)
    response = org_key_client(org).get(f"/api/v1/things/{foreign.pk}")
    assert response.status_code == 404


def test_a_malformed_object_id_is_400_invalid_id(api):
    response = api.get("/api/v1/things/nope")
    assert response.status_code == 400 and response.json()["code"] == "invalid_id"


def test_viewers_read_but_cannot_write(client_for, viewer, org):
    client = client_for(viewer, org)
    assert client.get("/api/v1/things").status_code == 200
    mine = Membership.objects.get(user=viewer)
    response = client.patch(f"/api/v1/things/{mine.pk}", {"role": "owner"}, format="json")
    assert response.status_code == 403 and response.json()["code"] == "forbidden"


def test_an_unauthenticated_request_is_401(anon, org):
    assert anon.get("/api/v1/things").status_code == 401


def test_the_real_credentials_reach_the_tenant_layer(bearer_client, member, org):
    """With a real JWT (not force_authenticate), the org is still resolved from X-Org-ID."""
    OrganizationFactory()
    response = bearer_client(member, org).get("/api/v1/things")
    assert response.status_code == 200


def test_a_real_org_key_pair_reaches_its_own_orgs_rows_only(
    real_org_key_client, org, other_org, member, outsider
):
    client = real_org_key_client(org)
    rows = client.get("/api/v1/things", HTTP_X_ORG_ID=str(other_org.pk)).json()
    assert {r["id"] for r in rows} == {
        str(m.pk) for m in Membership.objects.filter(organization=org)
    }
    foreign = Membership.objects.get(user=outsider)
    assert client.get(f"/api/v1/things/{foreign.pk}").status_code == 404

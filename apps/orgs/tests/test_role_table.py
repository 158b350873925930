"""Every route of the auth, me and orgs tags x every role and the org key.

Expected outcomes follow apps.core.permissions.ROLE_PERMISSIONS: viewers and members read,
admins manage the org, members and keys, only owners delete the org; an org key reads its own
organization but lists neither its members nor its keys (403), manages nothing and is not a
person (/me is 401 for it)."""

from __future__ import annotations

import pytest

from apps.accounts import services as account_services
from apps.accounts.tests.factories import UserFactory
from apps.orgs.tests.factories import MembershipFactory

ROLES = ["owner", "admin", "member", "viewer", "machine"]


def _e(owner: int, admin: int, member: int, viewer: int, machine: int) -> dict[str, int]:
    """Expected status per principal, in ROLES order."""
    return dict(zip(ROLES, (owner, admin, member, viewer, machine), strict=True))


# (method, path template, body, {role: expected status})
ROUTES = [
    ("get", "/api/v1/me", None, _e(200, 200, 200, 200, 401)),
    (
        "patch",
        "/api/v1/me",
        {"display_name": "X"},
        _e(200, 200, 200, 200, 401),
    ),
    (
        "get",
        "/api/v1/me/api-keys",
        None,
        _e(200, 200, 200, 200, 401),
    ),
    (
        "post",
        "/api/v1/me/api-keys",
        {"name": "k"},
        _e(201, 201, 201, 201, 401),
    ),
    (
        "delete",
        "/api/v1/me/api-keys/{my_key}",
        None,
        _e(204, 204, 204, 204, 401),
    ),
    ("get", "/api/v1/orgs", None, _e(200, 200, 200, 200, 401)),
    (
        "post",
        "/api/v1/orgs",
        {"name": "New"},
        _e(201, 201, 201, 201, 401),
    ),
    (
        "get",
        "/api/v1/orgs/{org}",
        None,
        _e(200, 200, 200, 200, 200),
    ),
    (
        "patch",
        "/api/v1/orgs/{org}",
        {"name": "Renamed"},
        _e(200, 200, 403, 403, 403),
    ),
    (
        "delete",
        "/api/v1/orgs/{org}",
        None,
        _e(204, 403, 403, 403, 403),
    ),
    (
        "get",
        "/api/v1/orgs/{org}/members",
        None,
        _e(200, 200, 200, 200, 403),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/members",
        {"user_id": "{newcomer}", "role": "member"},
        _e(200, 200, 403, 403, 403),
    ),
    (
        "delete",
        "/api/v1/orgs/{org}/members/{someone}",
        None,
        _e(204, 204, 403, 403, 403),
    ),
    (
        "get",
        "/api/v1/orgs/{org}/api-keys",
        None,
        _e(200, 200, 200, 200, 403),
    ),
    (
        "post",
        "/api/v1/orgs/{org}/api-keys",
        {"name": "bot"},
        _e(201, 201, 403, 403, 403),
    ),
    (
        "delete",
        "/api/v1/orgs/{org}/api-keys/{org_key}",
        None,
        _e(204, 204, 403, 403, 403),
    ),
    (
        "post",
        "/api/v1/auth/refresh",
        {"refresh_token": "x.y"},
        _e(401, 401, 401, 401, 401),
    ),
    (
        "post",
        "/api/v1/auth/logout",
        {"refresh_token": "x.y"},
        _e(204, 204, 204, 204, 204),
    ),
    (
        "get",
        "/api/v1/.well-known/jwks.json",
        None,
        _e(200, 200, 200, 200, 200),
    ),
]


def _fill(value, names):
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    return value


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    ROUTES,
    ids=[f"{m.upper()} {p}" for m, p, _, _ in ROUTES],
)
def test_role_route_table(
    role, method, path, body, expected, org, owner, client_for, org_key_client
):
    if role == "machine":
        client = org_key_client(org)
        actor = None
    else:
        actor = owner if role == "owner" else UserFactory()
        if role != "owner":
            MembershipFactory(user=actor, organization=org, role=role)
        client = client_for(actor)
    someone = MembershipFactory(organization=org, role="member").user
    names = {
        "org": org.pk,
        "newcomer": UserFactory().pk,
        "someone": someone.pk,
        "org_key": account_services.api_key_create_for_org(organization=org).key.pk,
        "my_key": account_services.api_key_create_for_user(user=actor).key.pk if actor else "x",
    }
    response = getattr(client, method)(_fill(path, names), _fill(body, names), format="json")
    assert response.status_code == expected[role], response.content


ORG_ROUTES = [
    ("get", "/api/v1/orgs/{org}"),
    ("patch", "/api/v1/orgs/{org}"),
    ("delete", "/api/v1/orgs/{org}"),
    ("get", "/api/v1/orgs/{org}/members"),
    ("post", "/api/v1/orgs/{org}/members"),
    ("delete", "/api/v1/orgs/{org}/members/{someone}"),
    ("get", "/api/v1/orgs/{org}/api-keys"),
    ("post", "/api/v1/orgs/{org}/api-keys"),
    ("delete", "/api/v1/orgs/{org}/api-keys/{org_key}"),
]


@pytest.mark.parametrize(("method", "path"), ORG_ROUTES)
@pytest.mark.parametrize("principal", ["user", "org_key"])
def test_another_orgs_routes_are_404(
    method, path, principal, org, owner, outsider, other_org, client_for, org_key_client
):
    client = client_for(outsider) if principal == "user" else org_key_client(other_org)
    names = {
        "org": org.pk,
        "someone": owner.pk,
        "org_key": account_services.api_key_create_for_org(organization=org).key.pk,
    }
    response = getattr(client, method)(path.format(**names), {}, format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_unauthenticated_requests_to_every_protected_route_are_401(anon, org):
    for method, path, _, _ in ROUTES[:16]:
        url = path.format(org=org.pk, my_key=org.pk, someone=org.pk, org_key=org.pk)
        assert getattr(anon, method)(url, {}, format="json").status_code == 401, url

"""Every API route x method x principal, walked from Django's URL resolver: the status each
principal gets follows from the one role table (apps.core.permissions.ROLE_PERMISSIONS) and the
permission each action declares, and no principal outside Acme reads or changes anything of
Acme's.

A route is known to the matrix by its view's permission classes: tenant viewsets
(`OrgScopedViewSet`, permission `HasOrgPermission`) from their `required_permissions`, the
`/orgs/{id}/...` views from theirs, user-only, platform-admin and public views by their class.
A view with any other access rule is unknown and fails the first test until it is declared in
`DECLARED` below with the rule it follows.

Principals send real credentials (JWTs, org key/secret pairs), so authentication is part of
what is tested.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts import services as account_services
from apps.accounts.tests.factories import UserFactory
from apps.clusters.tests.factories import (
    ActionFactory,
    AnnotationFactory,
    ClusterFactory,
    ClusterMetadataFactory,
    ClusterRunFactory,
    LabelFactory,
    NodePoolFactory,
    TaintFactory,
)
from apps.core.models import OrgOwnedModel
from apps.core.permissions import READ_ONLY_KEY_PERMISSIONS as READ_ONLY_PERMS
from apps.core.permissions import Perm, required_permission, role_allows
from apps.core.tenancy import MACHINE_ROLE
from apps.dns.tests.factories import DomainFactory, RecordSetFactory
from apps.groupsync.tests.factories import GroupRoleMappingFactory, GroupSyncSettingsFactory
from apps.infrastructure import registry
from apps.infrastructure.tests.factories import (
    CredentialFactory,
    LoadBalancerFactory,
    ServerFactory,
    SSHKeyFactory,
)
from apps.orgs.tests.factories import MembershipFactory, OrganizationFactory
from apps.webhooks import services as webhook_services

API = "api/v1/"
METHODS = ("get", "post", "put", "patch", "delete")
ROLES = ("viewer", "member", "admin", "owner")
# Denied and outside principals go first, so an object a permitted role deletes is still there
# when they try it.
PRINCIPALS = (
    "anonymous",
    "disabled_user",
    "expired_key",
    "revoked_key",
    "other_org_member",
    "other_org_key",
    # Acme's own scoped keys (docs/identity.md, "Scoped keys"): they go before Acme's members
    # too, and none of them may change anything of Acme's here.
    "read_only_key",
    "read_only_user_key",
    "out_of_cidr_key",
    "cluster_key",
    *ROLES,
    "org_key",
)
OUTSIDERS = ("other_org_member", "other_org_key")
SCOPED = ("read_only_key", "read_only_user_key", "out_of_cidr_key", "cluster_key")
WRITES = ("post", "put", "patch", "delete")
# Live log streams hold the connection until their run ends; their access rule is the same
# viewset's and is covered by the non-streaming route beside them.
SKIP = re.compile(r"/logs/stream$")


@dataclass(frozen=True)
class Rule:
    """How a route decides access: `kind` is public (no authentication at all), open (anyone,
    but a wrong credential is refused), user, platform_admin, tenant (X-Org-ID or org key) or
    org_path (the organization in the path); `perm` the permission it needs."""

    kind: str
    perm: Perm | None = None


# Routes whose view follows none of the recognized rules, declared by hand:
# "METHOD /path/{template}" -> Rule. Empty today: every view is recognized from its class.
DECLARED: dict[str, Rule] = {}


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    view: Any
    action: str | None

    @property
    def label(self) -> str:
        return f"{self.method.upper()} /{self.template}"


def _template(pattern: str) -> str:
    text = pattern.replace("^", "").replace("$", "").replace("/?", "").replace("\\", "")
    return re.sub(r"\(\?P<([^>]+)>[^)]*\)", r"{\1}", text)


def _walk(patterns: list, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern.callback


def api_routes() -> list[Route]:
    routes = []
    for pattern, callback in _walk(get_resolver().url_patterns):
        template = _template(pattern)
        if not template.startswith(API) or SKIP.search(template):
            continue
        view = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        if view is None:
            continue  # the catch-all JSON 404 for unknown /api/ paths
        allowed = set(getattr(view, "http_method_names", METHODS))
        actions = getattr(callback, "actions", None)
        for method in METHODS:
            if method not in allowed:
                continue
            if actions is not None and method in actions:
                routes.append(Route(method, template, view, actions[method]))
            elif actions is None and hasattr(view, method):
                routes.append(Route(method, template, view, None))
    return routes


def _names(classes: Any) -> set[str]:
    return {klass.__name__ for cls in classes or () for klass in cls.__mro__}


def rule_for(route: Route) -> Rule | None:
    """The route's access rule, read from its view class (None: unknown, must be declared)."""
    if route.label in DECLARED:
        return DECLARED[route.label]
    view = route.view
    permissions = _names(getattr(view, "permission_classes", ()))
    if "HasOrgPermission" in permissions:
        stub_view = SimpleNamespace(
            action=route.action, required_permissions=view.required_permissions
        )
        stub_request = SimpleNamespace(method=route.method.upper())
        return Rule("tenant", required_permission(stub_view, stub_request))
    if "HasOrgPathPermission" in permissions:
        method = "GET" if route.method == "head" else route.method.upper()
        return Rule("org_path", view.required_permissions.get(method, Perm.WRITE))
    if "IsPlatformAdmin" in permissions:
        return Rule("platform_admin")
    if "IsUserPrincipal" in permissions:
        return Rule("user")
    if permissions <= {"AllowAny", "BasePermission", "object"}:
        # Open to anyone; where the view authenticates, a credential that is wrong is 401.
        return Rule("public" if not getattr(view, "authentication_classes", None) else "open")
    return None


def test_every_api_route_has_a_known_access_rule():
    routes = api_routes()
    unknown = [route.label for route in routes if rule_for(route) is None]
    assert len(routes) > 100
    assert unknown == [], "declare these routes in DECLARED"


def test_the_platform_s_webhook_routes_are_walked_as_platform_admin_only():
    """Every route of the platform's own webhook endpoints is in the walk, each one for
    platform admins alone (so the matrix expects 401/403 from every principal of the cast)."""
    walked = {
        route.label: rule_for(route)
        for route in api_routes()
        if route.template.startswith(API + "admin/webhooks")
    }
    assert set(walked.values()) == {Rule("platform_admin")}
    assert {
        "GET /api/v1/admin/webhooks",
        "POST /api/v1/admin/webhooks",
        "PATCH /api/v1/admin/webhooks/{pk}",
        "DELETE /api/v1/admin/webhooks/{pk}",
        "POST /api/v1/admin/webhooks/{pk}/rotate-secret",
        "POST /api/v1/admin/webhooks/{pk}/test",
        "GET /api/v1/admin/webhooks/{pk}/deliveries",
        "GET /api/v1/admin/webhooks/{pk}/deliveries/{delivery_id}",
        "POST /api/v1/admin/webhooks/{pk}/deliveries/{delivery_id}/attempts",
    } <= set(walked)


def test_a_view_with_an_access_rule_of_its_own_is_unknown_until_declared():
    from rest_framework.permissions import BasePermission
    from rest_framework.views import APIView

    class IsTuesday(BasePermission):
        pass

    class TuesdayView(APIView):
        permission_classes = [IsTuesday]

    route = Route("get", API + "tuesday", TuesdayView, None)
    assert rule_for(route) is None
    DECLARED[route.label] = Rule("user")
    try:
        assert rule_for(route) == Rule("user")
    finally:
        del DECLARED[route.label]


ALLOWED = "allowed"


CREDENTIALLESS = ("anonymous", "disabled_user", "expired_key", "revoked_key")


def expected(
    rule: Rule, principal: str, names_an_object: bool, route: Route | None = None
) -> int | str:
    """What `principal` gets from a route with `rule`: a status, or ALLOWED (anything but
    401/403, and never 5xx: validation errors and 404s of objects a permitted delete removed
    are the view's business)."""
    if rule.kind != "public" and principal in SCOPED and route is not None:
        return _scoped_key(rule, principal, names_an_object, route)
    if rule.kind == "public" or (rule.kind == "open" and principal not in CREDENTIALLESS):
        return ALLOWED
    if principal in CREDENTIALLESS:
        return ALLOWED if rule.kind == "open" and principal == "anonymous" else 401
    is_key = principal in ("org_key", "other_org_key")
    if rule.kind == "user":
        return 401 if is_key else ALLOWED
    if rule.kind == "platform_admin":
        return 403  # nobody in the cast is a platform admin
    return _in_organization(rule, principal, MACHINE_ROLE if is_key else principal, names_an_object)


def _scoped_key(rule: Rule, principal: str, names_an_object: bool, route: Route) -> int | str:
    """Acme's scoped keys: outside its networks a key is no credential (401); a read-only key
    writes nothing and reaches no route needing more than reading (secrets, logs: 403); a key
    limited to another of Acme's clusters finds Acme's cluster
    nowhere (404), may list clusters (only its own), and is refused every route not about a
    cluster (403). Otherwise the key is what it would be unscoped: `read_only_user_key` is an
    owner's user key, the others org keys."""
    if principal == "out_of_cidr_key":
        return 401
    if principal.startswith("read_only") and (
        route.method in WRITES or (rule.perm is not None and rule.perm not in READ_ONLY_PERMS)
    ):
        return 403
    if principal == "read_only_user_key":
        return expected(rule, "owner", names_an_object)
    if principal == "read_only_key" or rule.kind == "open":
        return expected(rule, "org_key", names_an_object)
    # cluster_key: an org key limited to a cluster that is not the one in the paths.
    if rule.kind == "user":
        return 401
    if rule.kind != "tenant" or not role_allows(MACHINE_ROLE, rule.perm or Perm.WRITE):
        return 403
    kwarg = getattr(route.view, "cluster_kwarg", None)
    if kwarg is None:
        return 403
    if "{" + kwarg + "}" in route.template:
        return 404
    return ALLOWED if route.method == "get" else 403


def _in_organization(rule: Rule, principal: str, role: str, names_an_object: bool) -> int | str:
    """Tenant and /orgs/{id} routes: the role table decides, outsiders find nothing."""
    assert rule.perm is not None
    if rule.kind == "org_path":
        if principal in OUTSIDERS:
            return 404  # another organization's existence does not leak
        return ALLOWED if role_allows(role, rule.perm) else 403
    if principal == "other_org_member":
        return 403  # X-Org-ID names an organization they are not a member of
    if not role_allows(role, rule.perm):
        return 403
    if principal == "other_org_key":
        return 404 if names_an_object else ALLOWED  # it acts in its own organization
    return ALLOWED


@pytest.fixture
def cast(db, settings):
    """Acme (the organization under test) with one of everything, Globex next door, and a
    client per principal."""
    for name in (
        "RATE_LIMIT",
        "RATE_LIMIT_USER",
        "RATE_LIMIT_KEY",
        "RATE_LIMIT_AUTH",
        "RATE_LIMIT_AUTH_FAILURES",
    ):
        setattr(settings, name, "")
    # Expired and revoked keys fail on every route; their failures must not spend the budget
    # that would stop the valid keys' slow verification (apps.accounts.authentication).
    settings.API_KEY_MAX_FAILURES = 100_000
    acme = OrganizationFactory(name="Acme")
    globex = OrganizationFactory(name="Globex")
    clients: dict[str, APIClient] = {}

    def user_client(user, org) -> APIClient:
        client = APIClient()
        token = account_services.token_pair_issue(user=user).access_token
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_X_ORG_ID=str(org.pk))
        return client

    def key_client(created) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_X_ORG_KEY=created.plain, HTTP_X_ORG_SECRET=created.secret)
        return client

    for role in ROLES:
        user = UserFactory()
        MembershipFactory(user=user, organization=acme, role=role)
        clients[role] = user_client(user, acme)
    disabled = UserFactory(is_disabled=True)
    MembershipFactory(user=disabled, organization=acme, role="owner")
    clients["disabled_user"] = user_client(disabled, acme)
    charlie = UserFactory()
    MembershipFactory(user=charlie, organization=globex, role="owner")
    clients["other_org_member"] = user_client(charlie, acme)
    clients["org_key"] = key_client(account_services.api_key_create_for_org(organization=acme))
    clients["other_org_key"] = key_client(
        account_services.api_key_create_for_org(organization=globex)
    )
    expired = account_services.api_key_create_for_org(organization=acme)
    type(expired.key).objects.filter(pk=expired.key.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    account_services.api_key_cache_clear(public_id=expired.key.public_id)
    clients["expired_key"] = key_client(expired)
    revoked = account_services.api_key_create_for_org(organization=acme)
    account_services.api_key_revoke(key=revoked.key)
    clients["revoked_key"] = key_client(revoked)
    clients["anonymous"] = APIClient()
    scoped = account_services.KeyScopeRequest
    clients["read_only_key"] = key_client(
        account_services.api_key_create_for_org(organization=acme, scope=scoped(read_only=True))
    )
    clients["out_of_cidr_key"] = key_client(
        account_services.api_key_create_for_org(
            organization=acme, scope=scoped(allowed_cidrs=("203.0.113.0/24",))
        )
    )
    # Limited to a cluster of Acme's that no path names.
    clients["cluster_key"] = key_client(
        account_services.api_key_create_for_org(
            organization=acme,
            scope=scoped(cluster_ids=(ClusterFactory(organization=acme).pk,)),
        )
    )
    read_only_owner = UserFactory()
    MembershipFactory(user=read_only_owner, organization=acme, role="owner")
    user_key = account_services.api_key_create_for_user(
        user=read_only_owner, scope=scoped(read_only=True)
    )
    clients["read_only_user_key"] = APIClient()
    clients["read_only_user_key"].credentials(
        HTTP_X_API_KEY=user_key.plain, HTTP_X_ORG_ID=str(acme.pk)
    )
    return SimpleNamespace(
        acme=acme,
        globex=globex,
        clients=clients,
        objects=_objects(acme),
        globex_objects=_objects(globex),
    )


def _objects(org) -> dict[str, str]:
    """One of every resource in `org`, keyed by the path segment naming its collection."""
    cluster = ClusterFactory(organization=org)
    pool = NodePoolFactory(organization=org)
    label, annotation = LabelFactory(organization=org), AnnotationFactory(organization=org)
    taint, server = TaintFactory(organization=org), ServerFactory(organization=org)
    through = {"organization": org}
    pool.servers.add(server, through_defaults=through)
    pool.labels.add(label, through_defaults=through)
    pool.annotations.add(annotation, through_defaults=through)
    pool.taints.add(taint, through_defaults=through)
    cluster.node_pools.add(pool, through_defaults=through)
    action = ActionFactory()
    domain = DomainFactory(organization=org)
    teammate = UserFactory()
    MembershipFactory(user=teammate, organization=org, role="member")
    GroupSyncSettingsFactory(organization=org)
    endpoint, _ = webhook_services.webhook_endpoint_create(
        organization=org, url="https://hooks.example.com/autoglue"
    )
    ids = {
        "actions": action.pk,
        "annotations": annotation.pk,
        "clusters": cluster.pk,
        "credentials": CredentialFactory(organization=org).pk,
        "domains": domain.pk,
        "records": RecordSetFactory(domain=domain).pk,
        "labels": label.pk,
        "load-balancers": LoadBalancerFactory(organization=org).pk,
        "metadata": ClusterMetadataFactory(cluster=cluster).pk,
        "node-pools": pool.pk,
        "runs": ClusterRunFactory(cluster=cluster, action_ref=action).pk,
        "servers": server.pk,
        "ssh": SSHKeyFactory(organization=org).pk,
        "taints": taint.pk,
        "orgs": org.pk,
        "members": teammate.pk,
        "api-keys": account_services.api_key_create_for_org(organization=org).key.pk,
        "auth": "google",
        "bastions": ServerFactory(organization=org, role="bastion").pk,
        "group-mappings": GroupRoleMappingFactory(organization=org).pk,
        "webhooks": endpoint.pk,
        "deliveries": webhook_services.webhook_test_send(endpoint=endpoint).pk,
        "route53-credentials": CredentialFactory(
            organization=org,
            scope_kind="service",
            scope={"service": "route53"},
            scope_fingerprint=registry.scope_fingerprint({"service": "route53"}),
        ).pk,
    }
    return {name: str(value) for name, value in ids.items()}


def concrete(template: str, objects: dict[str, str]) -> str:
    """The route's path with each `{param}` the object of the collection named before it."""
    segments = template.split("/")
    for index, segment in enumerate(segments):
        if segment.startswith("{"):
            segments[index] = objects.get(segments[index - 1], objects["clusters"])
    return "/" + "/".join(segments)


def acme_rows(org) -> set[tuple[str, str, str]]:
    """Every row Acme owns, with its last change: equal before and after means untouched."""
    rows = set()
    for model in django_apps.get_models():
        if issubclass(model, OrgOwnedModel):
            for pk, updated in model.objects.filter(organization=org).values_list(
                "pk", "updated_at"
            ):
                rows.add((model._meta.label, str(pk), str(updated)))
    return rows


def _send(client: APIClient, route: Route, path: str) -> Any:
    body = {} if route.method in ("post", "put", "patch") else None
    return getattr(client, route.method)(path, body, format="json")


def _error_code(response: Any) -> str:
    if not response.content or "json" not in response.get("Content-Type", ""):
        return ""
    return str(json.loads(response.content).get("code", ""))


def _deletes_the_org(route: Route) -> bool:
    return route.method == "delete" and route.template == API + "orgs/{org_id}"


def test_every_route_answers_every_principal_as_the_role_table_says(cast):
    routes = [route for route in api_routes() if rule_for(route) is not None]
    # Deleting Acme ends every later request's business: it goes last, after every principal.
    schedule = [(p, r) for p in PRINCIPALS for r in routes if not _deletes_the_org(r)]
    last = sorted(PRINCIPALS, key=lambda principal: principal == "owner")  # the one who can
    schedule += [(p, r) for p in last for r in routes if _deletes_the_org(r)]
    absent = {key: str(uuid.uuid4()) for key in cast.objects}
    absent["auth"] = cast.objects["auth"]
    acme_ids = {value for key, value in cast.objects.items() if key != "auth"}
    mismatches: list[str] = []
    leaks: list[str] = []
    before = acme_rows(cast.acme)
    members = {*ROLES, "org_key"}
    outsiders_done = False
    for principal, route in schedule:
        if principal in members and not outsiders_done:
            # Everyone before Acme's own principals has been through every route.
            outsiders_done = True
            assert acme_rows(cast.acme) == before, "a non-member changed Acme's rows"
        client = cast.clients[principal]
        names_an_object = "{" in route.template
        response = _send(client, route, concrete(route.template, cast.objects))
        got = response.status_code
        want = expected(rule_for(route), principal, names_an_object, route)
        if principal in OUTSIDERS and names_an_object and want in (ALLOWED, 404):
            # An outsider learns nothing: Acme's object answers exactly as a missing one
            # (a body refused before any lookup, an idempotent delete's 204, a 404).
            control = _send(client, route, concrete(route.template, absent))
            same = (got, _error_code(response)) == (control.status_code, _error_code(control))
            if not same or got in (200, 201):
                mismatches.append(
                    f"{principal:>16} {route.label}: {got} for Acme's object, "
                    f"{control.status_code} for a missing one"
                )
        elif (
            got >= 500
            or (want == ALLOWED and got in (401, 403))
            or (want != ALLOWED and got != want)
        ):
            mismatches.append(f"{principal:>16} {route.label}: {got}, expected {want}")
        if principal in (*OUTSIDERS, "cluster_key") and 200 <= got < 300 and response.content:
            text = response.content.decode(errors="replace")
            seen = sorted(i for i in acme_ids if i in text)
            if seen:
                leaks.append(f"{principal} {route.label} shows {seen}")
    assert leaks == []
    assert mismatches == [], "\n".join(mismatches)


def test_the_matrix_covers_each_role_of_the_table():
    from apps.core.permissions import ROLE_PERMISSIONS

    assert set(ROLE_PERMISSIONS) == {*ROLES, MACHINE_ROLE}
    assert json.dumps(sorted(PRINCIPALS)) == json.dumps(sorted(set(PRINCIPALS)))


def test_an_outsider_cannot_point_its_own_objects_at_another_organizations(cast):
    """Globex's key, writing to Globex's own cluster and node pool, names Acme's servers,
    labels, load balancers, DNS records, SSH key, credential: every such write is refused
    (each reference is looked up within the writer's organization), and nothing of Acme's
    changes. Bodies: one valid body per write operation, as the conformance runs use."""
    from tests.conformance.support import VALID_BODIES

    writes = []
    for key, template in VALID_BODIES.items():
        text = json.dumps(template)
        names = set(re.findall(r'"\{([a-z0-9-]+)\}"', text))
        if names and not names <= {"members"}:  # a person is not an object of Acme's
            for name in names:
                text = text.replace("{" + name + "}", cast.objects[name])
            method, path = key.split(" ", 1)
            writes.append((key, method.lower(), API.rstrip("/") + path, json.loads(text)))
    assert len(writes) >= 10

    before = acme_rows(cast.acme)
    accepted = []
    for key, method, template, body in writes:
        url = concrete(template, cast.globex_objects)
        response = getattr(cast.clients["other_org_key"], method)(url, body, format="json")
        if not 400 <= response.status_code < 500:
            accepted.append(f"{key}: {response.status_code} {response.content[:120]!r}")
    assert accepted == []
    assert acme_rows(cast.acme) == before

    # The same bodies on Acme's own objects, by Acme's key, are accepted: the refusals above
    # are the organization boundary, not a malformed body.
    refused = []
    for key, method, template, body in writes:
        url = concrete(template, cast.objects)
        response = getattr(cast.clients["org_key"], method)(url, body, format="json")
        if not 200 <= response.status_code < 300:
            refused.append(f"{key}: {response.status_code} {response.content[:120]!r}")
    assert refused == []


REVEALS = (
    "clusters/{clusters}?reveal=true",
    "ssh/{ssh}?reveal=true",
    "ssh/{ssh}/download?part=private",
    "ssh/{ssh}/download?part=both&mode=json",
)


def _reveal_path(template: str, objects: dict[str, str]) -> str:
    return "/" + API + re.sub(r"\{([a-z-]+)\}", lambda m: objects[m.group(1)], template)


def test_a_read_only_key_reveals_no_secret_its_owner_could(cast):
    """A read-only key (an org key, or an owner's user key) reads Acme's clusters and SSH keys
    but never their secrets: `reveal=true` and private-key downloads are 403, and a cluster
    answer carries no join token or certificate key. The same requests by the unscoped org key
    and the owner do reveal them, so the refusals are the key's scope."""
    cluster_path = _reveal_path("clusters/{clusters}", cast.objects)
    for principal in ("read_only_key", "read_only_user_key"):
        client = cast.clients[principal]
        for template in REVEALS:
            response = client.get(_reveal_path(template, cast.objects))
            assert response.status_code == 403, (principal, template, response.content)
        for path in (cluster_path, "/" + API + "clusters"):
            response = client.get(path)
            assert response.status_code == 200
            assert b"CANARY" not in response.content, (principal, path)
            assert b"random_token" not in response.content
    for principal in ("org_key", "owner"):
        client = cast.clients[principal]
        for template in REVEALS:
            response = client.get(_reveal_path(template, cast.objects))
            assert response.status_code == 200, (principal, template, response.content)
        assert b"CANARY-TOKEN" in client.get(cluster_path).content

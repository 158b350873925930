import json
import logging

import pytest

from apps.infrastructure import registry
from apps.infrastructure.models import Credential
from apps.infrastructure.tests.factories import CredentialFactory

URL = "/api/v1/credentials"
OUT_FIELDS = {
    "id",
    "credential_provider",
    "kind",
    "schema_version",
    "name",
    "scope_kind",
    "scope_version",
    "scope",
    "account_id",
    "region",
    "created_at",
    "updated_at",
}
AWS_SECRET = {"access_key_id": "AKIAABCDEFGHIJKLMNOP", "secret_access_key": "CANARY-aws-secret"}


def _aws(**overrides):
    return {
        "credential_provider": "aws",
        "kind": "aws_access_key",
        "schema_version": 1,
        "name": "route53",
        "scope_kind": "service",
        "scope_version": 1,
        "scope": {"service": "route53"},
        "account_id": "123456789012",
        "region": "us-east-1",
        "secret": AWS_SECRET,
        **overrides,
    }


def test_creating_an_aws_credential_returns_it_without_the_secret(api, org):
    response = api.post(URL, _aws(), format="json")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == OUT_FIELDS
    assert body["scope"] == {"service": "route53"}
    assert "CANARY" not in response.content.decode()
    credential = Credential.objects.get(pk=body["id"])
    assert credential.organization_id == org.pk
    assert json.loads(credential.secret) == AWS_SECRET
    assert credential.scope_fingerprint == registry.scope_fingerprint({"service": "route53"})


@pytest.mark.parametrize(
    "payload",
    [
        {
            "credential_provider": "cloudflare",
            "kind": "api_token",
            "scope_kind": "provider",
            "scope": {},
            "secret": {"token": "CANARY-cf"},
        },
        {
            "credential_provider": "hetzner",
            "kind": "api_token",
            "scope_kind": "credential_provider",
            "scope": {},
            "secret": {"token": "CANARY-hz"},
        },
        {
            "credential_provider": "digitalocean",
            "kind": "api_token",
            "scope_kind": "provider",
            "scope": {},
            "secret": {"token": "CANARY-do"},
        },
        {
            "credential_provider": "generic",
            "kind": "basic_auth",
            "scope_kind": "provider",
            "scope": {},
            "secret": {"username": "u", "password": "CANARY-pw"},
        },
        {
            "credential_provider": "generic",
            "kind": "oauth2",
            "scope_kind": "provider",
            "scope": {},
            "secret": {
                "client_id": "c",
                "client_secret": "CANARY-cs",
                "refresh_token": "CANARY-rt",
            },
        },
        {
            "credential_provider": "aws",
            "kind": "aws_access_key",
            "scope_kind": "resource",
            "scope": {"arn": "arn:aws:s3:::backups"},
            "secret": AWS_SECRET,
        },
    ],
    ids=["cloudflare", "hetzner-alias", "digitalocean", "basic", "oauth2", "aws-resource"],
)
def test_every_registered_provider_and_kind_can_be_created(api, payload):
    response = api.post(URL, {"schema_version": 1, "scope_version": 1, **payload}, format="json")

    assert response.status_code == 201, response.json()
    assert response.json()["scope_kind"] in ("provider", "resource")
    assert "CANARY" not in response.content.decode()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"secret": {"access_key_id": "short", "secret_access_key": "x"}}, "secret.access_key_id"),
        ({"secret": {"access_key_id": "AKIAABCDEFGHIJKLMNOP"}}, "secret.secret_access_key"),
        ({"secret": {**AWS_SECRET, "extra": "x"}}, "secret.extra"),
        ({"secret": "not-an-object"}, "secret"),
        ({"scope": {"service": "lambda"}}, "scope.service"),
        ({"scope_kind": "resource", "scope": {"arn": "nope"}}, "scope.arn"),
        ({"scope_kind": "galaxy"}, "scope_kind"),
        ({"kind": "api_token"}, "kind"),
        ({"credential_provider": "gcp"}, "credential_provider"),
        ({"schema_version": 2}, "schema_version"),
        ({"schema_version": 0}, "schema_version"),
        ({"name": "x" * 101}, "name"),
        ({"account_id": "1" * 33}, "account_id"),
    ],
)
def test_invalid_credentials_are_400_naming_the_field(api, overrides, field, caplog):
    response = api.post(URL, _aws(**overrides), format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "validation_error"
    assert field in response.json()["message"]
    assert "CANARY" not in response.content.decode()
    assert Credential.objects.count() == 0


def test_a_second_credential_for_the_same_exact_scope_is_409(api):
    assert api.post(URL, _aws(), format="json").status_code == 201

    response = api.post(URL, _aws(name="again"), format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    assert "CANARY" not in response.content.decode()
    assert Credential.objects.count() == 1


def test_the_same_scope_in_another_org_is_fine(api, other_org):
    CredentialFactory(organization=other_org, scope_kind="service", scope={"service": "route53"})

    assert api.post(URL, _aws(), format="json").status_code == 201


def test_scope_fingerprint_ignores_key_order():
    assert registry.scope_fingerprint({"a": 1, "b": 2}) == registry.scope_fingerprint(
        {"b": 2, "a": 1}
    )
    assert registry.scope_fingerprint({}) != registry.scope_fingerprint({"service": "s3"})


def test_list_filters_and_never_returns_secrets(api, org, django_assert_max_num_queries):
    CredentialFactory(organization=org, scope_kind="service", scope={"service": "s3"})
    CredentialFactory(
        organization=org,
        provider="cloudflare",
        kind="api_token",
        scope_kind="provider",
        scope={},
        secret='{"token":"CANARY-cf"}',
    )

    everything = api.get(URL)
    aws = api.get(URL, {"credential_provider": "aws"})
    provider_wide = api.get(URL, {"scope_kind": "credential_provider"})
    tokens = api.get(URL, {"kind": "api_token"})

    assert len(everything.json()) == 2
    assert [c["credential_provider"] for c in aws.json()] == ["aws"]
    assert [c["credential_provider"] for c in provider_wide.json()] == ["cloudflare"]
    assert [c["kind"] for c in tokens.json()] == ["api_token"]
    for response in (everything, aws, provider_wide, tokens):
        assert "CANARY" not in response.content.decode()


def test_list_query_count_does_not_grow_with_credentials(api, org, django_assert_max_num_queries):
    CredentialFactory(organization=org, scope_kind="service", scope={"service": "s3"})
    with django_assert_max_num_queries(4) as few:
        api.get(URL)
    for service in ("ec2", "iam", "rds", "dynamodb", "route53"):
        CredentialFactory(organization=org, scope_kind="service", scope={"service": service})
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(api.get(URL).json()) == 6


def test_patch_rotates_the_secret_and_updates_plain_fields(api, org):
    credential = CredentialFactory(organization=org)
    new_secret = {"access_key_id": "AKIAZZZZZZZZZZZZZZZZ", "secret_access_key": "CANARY-rotated"}

    response = api.patch(
        f"{URL}/{credential.pk}", {"secret": new_secret, "name": "renamed"}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["name"] == "renamed"
    assert "CANARY" not in response.content.decode()
    credential.refresh_from_db()
    assert json.loads(credential.secret) == new_secret


def test_patch_with_an_invalid_secret_is_400_invalid_secret_and_keeps_the_old_one(api, org):
    credential = CredentialFactory(organization=org)
    before = credential.secret

    response = api.patch(f"{URL}/{credential.pk}", {"secret": {"token": "x"}}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_secret"
    credential.refresh_from_db()
    assert credential.secret == before


def test_patch_changing_scope_kind_without_a_scope_is_400_invalid_scope(api, org):
    credential = CredentialFactory(organization=org)

    response = api.patch(f"{URL}/{credential.pk}", {"scope_kind": "service"}, format="json")

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_scope"


def test_patch_to_a_scope_another_credential_holds_is_409(api, org):
    CredentialFactory(organization=org, scope_kind="service", scope={"service": "s3"})
    other = CredentialFactory(organization=org, scope_kind="service", scope={"service": "ec2"})

    response = api.patch(f"{URL}/{other.pk}", {"scope": {"service": "s3"}}, format="json")

    assert response.status_code == 409


def test_patch_to_a_new_scope_kind_recomputes_the_fingerprint(api, org):
    credential = CredentialFactory(organization=org, scope_kind="service", scope={"service": "s3"})
    scope = {"arn": "arn:aws:s3:::logs"}

    response = api.patch(
        f"{URL}/{credential.pk}", {"scope_kind": "resource", "scope": scope}, format="json"
    )

    assert response.status_code == 200
    assert (response.json()["scope_kind"], response.json()["scope"]) == ("resource", scope)
    credential.refresh_from_db()
    assert credential.scope_fingerprint == registry.scope_fingerprint(scope)


@pytest.mark.parametrize("who", ["owner", "admin_user"])
def test_owners_and_admins_can_reveal_a_secret_as_a_json_object(
    request, client_for, org, who, caplog
):
    user = request.getfixturevalue(who)
    credential = CredentialFactory(organization=org, name="prod")

    with caplog.at_level(logging.INFO):
        response = client_for(user, org).post(f"{URL}/{credential.pk}/reveal", {}, format="json")

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert response.json() == {
        "access_key_id": "AKIACANARY0000000000",
        "secret_access_key": "CANARY-prod",
    }
    events = [r for r in caplog.records if getattr(r, "event", None) == "secret_revealed"]
    assert [e.resource_id for e in events] == [str(credential.pk)]
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "CANARY" not in logged


def test_an_org_key_can_reveal_a_secret(org_key_client, org):
    credential = CredentialFactory(organization=org, name="ci")

    response = org_key_client(org).post(f"{URL}/{credential.pk}/reveal")

    assert response.status_code == 200
    assert response.json()["secret_access_key"] == "CANARY-ci"


@pytest.mark.parametrize("who", ["member", "viewer"])
def test_members_and_viewers_cannot_reveal_a_secret(request, client_for, org, who):
    user = request.getfixturevalue(who)
    credential = CredentialFactory(organization=org)

    response = client_for(user, org).post(f"{URL}/{credential.pk}/reveal")

    assert response.status_code == 403
    assert "CANARY" not in response.content.decode()


def test_a_viewer_can_read_credentials_but_not_write(client_for, viewer, org):
    credential = CredentialFactory(organization=org)
    client = client_for(viewer, org)

    assert client.get(URL).status_code == 200
    assert client.get(f"{URL}/{credential.pk}").status_code == 200
    assert client.post(URL, _aws(), format="json").status_code == 403
    assert client.patch(f"{URL}/{credential.pk}", {"name": "x"}, format="json").status_code == 403
    assert client.delete(f"{URL}/{credential.pk}").status_code == 403


def test_deleting_a_credential_is_204(api, org):
    credential = CredentialFactory(organization=org)

    assert api.delete(f"{URL}/{credential.pk}").status_code == 204
    assert not Credential.objects.filter(pk=credential.pk).exists()


def test_deleting_a_credential_a_dns_domain_uses_is_409_and_keeps_it(api, org):
    from apps.dns.tests.factories import DomainFactory

    domain = DomainFactory(organization=org)

    response = api.delete(f"{URL}/{domain.credential_id}")

    assert response.status_code == 409
    assert response.json()["code"] == "credential_in_use"
    assert Credential.objects.filter(pk=domain.credential_id).exists()


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("get", "", None),
        ("patch", "", {"name": "stolen"}),
        ("delete", "", None),
        ("post", "/reveal", {}),
    ],
)
def test_another_orgs_credential_is_404_for_users_and_org_keys(
    client_for, owner, org, other_org, org_key_client, method, suffix, body
):
    theirs = CredentialFactory(organization=other_org, name="theirs")
    for client in (client_for(owner, org), org_key_client(org)):
        kwargs = {"format": "json"} if body is not None else {}
        args = (body,) if body is not None else ()
        response = getattr(client, method)(f"{URL}/{theirs.pk}{suffix}", *args, **kwargs)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
        assert "CANARY" not in response.content.decode()
    theirs.refresh_from_db()
    assert theirs.name == "theirs"


def test_an_org_key_lists_only_its_orgs_credentials(org_key_client, org, other_org):
    CredentialFactory(organization=org, name="mine")
    CredentialFactory(organization=other_org, name="theirs")

    response = org_key_client(org).get(URL)

    assert [c["name"] for c in response.json()] == ["mine"]

"""The credential registry, as data: which providers exist, which secret kinds each accepts (and
the fields of each kind's secret, per schema version), and which scope kinds each supports.

Adding a provider or a kind is an edit to `PROVIDERS` below, nothing else. Validation errors are
`RegistryError(path, message)` where `path` names the offending field (`secret.token`,
`scope.service`); the service turns them into 400s.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Validator = Callable[[Any], str | None]  # returns an error message, or None if the value is fine


class RegistryError(ValueError):
    """A registry validation failure; `path` names the field, `message` says what is wrong."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def _non_empty_string(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty string"
    return None


def _optional_string(value: Any) -> str | None:
    return None if isinstance(value, str) else "must be a string"


_AWS_ACCESS_KEY_ID = re.compile(r"^[A-Za-z0-9]{20}$")


def _aws_access_key_id(value: Any) -> str | None:
    if not isinstance(value, str) or not _AWS_ACCESS_KEY_ID.match(value):
        return "must be exactly 20 letters or digits"
    return None


AWS_SERVICES = ("route53", "s3", "ec2", "iam", "rds", "dynamodb")


def _aws_service(value: Any) -> str | None:
    if value not in AWS_SERVICES:
        return f"must be one of {', '.join(AWS_SERVICES)}"
    return None


def _aws_arn(value: Any) -> str | None:
    if not isinstance(value, str) or not value.startswith("arn:") or not 11 <= len(value) <= 2047:
        return "must be an ARN (arn:...), 11 to 2047 characters"
    return None


@dataclass(frozen=True)
class FieldSpec:
    """One field of a secret or scope object."""

    name: str
    validate: Validator = _non_empty_string
    required: bool = True


@dataclass(frozen=True)
class ObjectSchema:
    """The fields a JSON object may hold. Unknown fields are refused, so a typo in a field name
    is an error rather than a silently dropped secret."""

    fields: tuple[FieldSpec, ...] = ()

    def validate(self, value: Any, *, prefix: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise RegistryError(prefix, "must be a JSON object")
        known = {spec.name: spec for spec in self.fields}
        for key in value:
            if key not in known:
                raise RegistryError(f"{prefix}.{key}", "is not a known field")
        for spec in self.fields:
            if spec.name not in value:
                if spec.required:
                    raise RegistryError(f"{prefix}.{spec.name}", "is required")
                continue
            error = spec.validate(value[spec.name])
            if error:
                raise RegistryError(f"{prefix}.{spec.name}", error)
        return dict(value)


@dataclass(frozen=True)
class ScopeSpec:
    """A scope kind: its object schema per version and how specific it is (0 = whole provider)."""

    versions: dict[int, ObjectSchema]
    specificity: int = 0


@dataclass(frozen=True)
class ProviderSpec:
    """A provider: secret kinds (kind -> schema version -> schema) and scope kinds."""

    kinds: dict[str, dict[int, ObjectSchema]]
    scopes: dict[str, ScopeSpec] = field(default_factory=dict)


_PROVIDER_WIDE = {"provider": ScopeSpec(versions={1: ObjectSchema()}, specificity=0)}
_API_TOKEN = {1: ObjectSchema((FieldSpec("token"),))}

PROVIDERS: dict[str, ProviderSpec] = {
    "aws": ProviderSpec(
        kinds={
            "aws_access_key": {
                1: ObjectSchema(
                    (
                        FieldSpec("access_key_id", _aws_access_key_id),
                        FieldSpec("secret_access_key"),
                        FieldSpec("region", _optional_string, required=False),
                    )
                )
            }
        },
        scopes={
            **_PROVIDER_WIDE,
            "service": ScopeSpec(
                versions={1: ObjectSchema((FieldSpec("service", _aws_service),))}, specificity=1
            ),
            "resource": ScopeSpec(
                versions={1: ObjectSchema((FieldSpec("arn", _aws_arn),))}, specificity=2
            ),
        },
    ),
    "cloudflare": ProviderSpec(kinds={"api_token": _API_TOKEN}, scopes=_PROVIDER_WIDE),
    "hetzner": ProviderSpec(kinds={"api_token": _API_TOKEN}, scopes=_PROVIDER_WIDE),
    "digitalocean": ProviderSpec(kinds={"api_token": _API_TOKEN}, scopes=_PROVIDER_WIDE),
    "generic": ProviderSpec(
        kinds={
            "basic_auth": {1: ObjectSchema((FieldSpec("username"), FieldSpec("password")))},
            "oauth2": {
                1: ObjectSchema(
                    (FieldSpec("client_id"), FieldSpec("client_secret"), FieldSpec("refresh_token"))
                )
            },
        },
        scopes=_PROVIDER_WIDE,
    ),
}

# The original's request validator spelled the provider-wide scope `credential_provider` while
# its registry and UI used `provider`; both are accepted, `provider` is stored and returned.
SCOPE_KIND_ALIASES = {"credential_provider": "provider"}


def normalize_scope_kind(scope_kind: str) -> str:
    return SCOPE_KIND_ALIASES.get(scope_kind, scope_kind)


def provider_spec(provider: Any) -> ProviderSpec:
    spec = PROVIDERS.get(provider) if isinstance(provider, str) else None
    if spec is None:
        raise RegistryError("credential_provider", f"must be one of {', '.join(PROVIDERS)}")
    return spec


def validate_secret(*, provider: str, kind: Any, schema_version: Any, secret: Any) -> dict:
    """The secret, checked against provider -> kind -> schema_version."""
    spec = provider_spec(provider)
    versions = spec.kinds.get(kind) if isinstance(kind, str) else None
    if versions is None:
        raise RegistryError("kind", f"must be one of {', '.join(spec.kinds)} for {provider}")
    schema = versions.get(schema_version)
    if schema is None:
        raise RegistryError("schema_version", f"version {schema_version} is not registered")
    return schema.validate(secret, prefix="secret")


def validate_scope(*, provider: str, scope_kind: Any, scope_version: Any, scope: Any) -> dict:
    """The scope, checked against provider -> scope_kind -> scope_version."""
    spec = provider_spec(provider)
    scope_spec = spec.scopes.get(scope_kind) if isinstance(scope_kind, str) else None
    if scope_spec is None:
        raise RegistryError("scope_kind", f"must be one of {', '.join(spec.scopes)} for {provider}")
    schema = scope_spec.versions.get(scope_version)
    if schema is None:
        raise RegistryError("scope_version", f"version {scope_version} is not registered")
    return schema.validate(scope, prefix="scope")


def canonical_json(value: dict) -> str:
    """Sorted keys, no whitespace: equal objects give equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def scope_fingerprint(scope: dict) -> str:
    """SHA-256 hex of the canonical scope."""
    return hashlib.sha256(canonical_json(scope).encode()).hexdigest()

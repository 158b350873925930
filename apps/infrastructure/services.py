"""Business logic of the infrastructure app: SSH keys, servers, credentials, load balancers.

Views call these; they raise `APIError`s with the contract's codes. Secrets are only ever
assigned to `EncryptedTextField`s and never logged: `secret_revealed` lines carry who and which
row, not what.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import ProtectedError, RestrictedError

from apps.audit import services as audit
from apps.clusters.models import Cluster, NodePoolServer
from apps.clusters.services import cluster_release_references
from apps.core.api.errors import APIError, bad_request, conflict, not_found
from apps.core.tenancy import Tenant
from apps.infrastructure import registry

# Re-exported: the host-key writes are services too; they live below the SSH client.
from apps.infrastructure.host_keys import server_pin_host_key as server_pin_host_key
from apps.infrastructure.host_keys import server_reset_host_key as server_reset_host_key
from apps.infrastructure.keygen import RSA_BITS, generate_key_pair
from apps.infrastructure.models import Credential, LoadBalancer, Server, SSHKey

logger = logging.getLogger(__name__)


def secret_reveal_log(
    *, tenant: Tenant, request_user: Any, resource: str, resource_id: Any
) -> None:
    """Audit line for an explicit secret read: who, in which org, which row. Never the secret."""
    audit.audit_secret_revealed(
        organization_id=tenant.organization.pk, resource=resource, resource_id=resource_id
    )
    logger.info(
        "secret revealed",
        extra={
            "event": "secret_revealed",
            "resource": resource,
            "resource_id": str(resource_id),
            "organization_id": str(tenant.organization.pk),
            "principal_kind": tenant.principal_kind,
            "principal": str(getattr(request_user, "pk", None) or request_user),
        },
    )


# --- SSH keys --------------------------------------------------------------------------------


def ssh_key_create(
    *,
    organization: Any,
    name: str,
    key_type: str | None = None,
    bits: Any = None,
    comment: str = "",
) -> SSHKey:
    """Generate a key pair server-side and store it (private half encrypted)."""
    key_type = (key_type or "rsa").strip().lower()
    if key_type not in SSHKey.KeyType.values:
        raise bad_request("invalid_type", "type: must be rsa or ed25519")
    if bits is not None:
        if key_type == "ed25519":
            raise bad_request("invalid_bits_for_type", "bits: only applies to rsa keys")
        if isinstance(bits, bool) or not isinstance(bits, int) or bits not in RSA_BITS:
            raise bad_request("invalid_bits", "bits: must be 2048, 3072 or 4096")
    if key_type == "rsa":
        bits = bits or 4096
    material = generate_key_pair(key_type=key_type, bits=bits, comment=comment)
    return SSHKey.objects.create(
        organization=organization,
        name=name,
        key_type=key_type,
        bits=bits,
        comment=comment.strip(),
        public_key=material.public_key,
        fingerprint=material.fingerprint,
        private_key=material.private_key,
    )


def ssh_key_delete(*, ssh_key: SSHKey) -> None:
    """Delete a key; a key still used by a server is a 409 naming how many use it.

    `Server.ssh_key` is RESTRICT (so the organization's own cascade may delete both); a direct
    delete of a key in use raises RestrictedError. ProtectedError is caught too, for any
    PROTECT relation added later."""
    try:
        with transaction.atomic():
            ssh_key.delete()
    except RestrictedError as exc:
        count = len(exc.restricted_objects)
        raise conflict(
            "ssh_key_in_use",
            f"ssh key is used by {count} server(s); move them to another key or delete them first",
        ) from None
    except ProtectedError as exc:
        count = len(exc.protected_objects)
        raise conflict(
            "ssh_key_in_use",
            f"ssh key is used by {count} server(s); move them to another key or delete them first",
        ) from None


# --- Servers ---------------------------------------------------------------------------------


def _check_bastion(*, role: str, public_ip_address: str | None) -> None:
    if role == Server.Role.BASTION and not public_ip_address:
        raise bad_request("public_ip_required", "public_ip_address: required for a bastion server")


def server_create(*, organization: Any, **fields: Any) -> Server:
    """Create a server (role/status already validated by the serializer)."""
    fields.setdefault("status", Server.Status.PENDING)
    _check_bastion(role=fields["role"], public_ip_address=fields.get("public_ip_address"))
    return Server.objects.create(organization=organization, **fields)


@transaction.atomic
def server_update(*, server: Server, **changes: Any) -> Server:
    """Apply a PATCH; the bastion rules are checked against the row as it will be.

    A bastion needs a public IP (400 `public_ip_required`); a server in a node pool cannot
    become a bastion (400 `server_not_node`, as node_pool_attach says); a bastion a cluster
    uses cannot take another role (400 `server_is_bastion` naming the cluster). The row is
    locked first, and node_pool_attach / cluster_attach_bastion lock it too, so a concurrent
    attach either sees the new role or is seen here.
    """
    locked = Server.objects.select_for_update().filter(pk=server.pk).first()
    if locked is None:
        raise not_found("server_not_found", "server not found")
    previous_role = locked.role
    server.refresh_from_db()
    for name, value in changes.items():
        setattr(server, name, value)
    _check_bastion(role=server.role, public_ip_address=server.public_ip_address)
    if server.role == Server.Role.BASTION and previous_role != Server.Role.BASTION:
        pool_id = (
            NodePoolServer.objects.filter(server_id=server.pk)
            .values_list("node_pool_id", flat=True)
            .first()
        )
        if pool_id is not None:
            raise bad_request(
                "server_not_node",
                f"role: server {server.pk} is in node pool {pool_id}; "
                "detach it before making it a bastion",
            )
    if previous_role == Server.Role.BASTION and server.role != Server.Role.BASTION:
        cluster_id = (
            Cluster.objects.filter(organization_id=server.organization_id, bastion_server=server)
            .values_list("pk", flat=True)
            .first()
        )
        if cluster_id is not None:
            raise bad_request(
                "server_is_bastion",
                f"role: server {server.pk} is the bastion of cluster {cluster_id}; "
                "detach it from the cluster first",
            )
    server.save()
    return server


@transaction.atomic
def server_delete(*, server: Server) -> None:
    """Delete a server. Clusters using it as their bastion are detached (the foreign key is
    SET NULL) and put back to `pre_pending` in the same transaction; its node pool memberships
    go with it. Nothing refers to a server with PROTECT/RESTRICT today, so the 409
    `server_in_use` below only guards a relation added later."""
    cluster_release_references(server=server)
    try:
        with transaction.atomic():
            server.delete()
    except (RestrictedError, ProtectedError):
        raise conflict("server_in_use", "server is still referenced elsewhere") from None


# --- Credentials -----------------------------------------------------------------------------


def _registry_call(code: str, fn: Any, **kwargs: Any) -> dict:
    try:
        return fn(**kwargs)
    except registry.RegistryError as exc:
        raise APIError(400, code, str(exc)) from None


def _save_credential(credential: Credential) -> Credential:
    """Save, answering the one-credential-per-exact-scope rule with a precise 409."""
    try:
        with transaction.atomic():
            credential.save()
    except IntegrityError as exc:
        if "infrastructure_credential_unique_org_provider_scope" in str(exc):
            raise conflict(
                "conflict",
                f"a {credential.provider} credential with this {credential.scope_kind} scope "
                "already exists in this organization",
            ) from None
        raise
    return credential


def credential_create(
    *,
    organization: Any,
    provider: str,
    kind: str,
    schema_version: int,
    scope_kind: str,
    scope_version: int,
    scope: Any,
    secret: Any,
    name: str = "",
    account_id: str = "",
    region: str = "",
) -> Credential:
    """Validate secret and scope against the registry, then store (secret encrypted)."""
    scope_kind = registry.normalize_scope_kind(scope_kind)
    secret = _registry_call(
        "validation_error",
        registry.validate_secret,
        provider=provider,
        kind=kind,
        schema_version=schema_version,
        secret=secret,
    )
    scope = _registry_call(
        "validation_error",
        registry.validate_scope,
        provider=provider,
        scope_kind=scope_kind,
        scope_version=scope_version,
        scope=scope,
    )
    credential = Credential(
        organization=organization,
        provider=provider,
        kind=kind,
        schema_version=schema_version,
        name=name,
        scope_kind=scope_kind,
        scope_version=scope_version,
        scope=json.loads(registry.canonical_json(scope)),
        scope_fingerprint=registry.scope_fingerprint(scope),
        account_id=account_id,
        region=region,
        secret=registry.canonical_json(secret),
    )
    return _save_credential(credential)


_UNSET: Any = object()


def credential_update(
    *,
    credential: Credential,
    name: str = _UNSET,
    account_id: str = _UNSET,
    region: str = _UNSET,
    scope_kind: str = _UNSET,
    scope_version: int = _UNSET,
    scope: Any = _UNSET,
    secret: Any = _UNSET,
) -> Credential:
    """PATCH: plain fields, a new scope (changing its kind/version requires the scope itself),
    and secret rotation (re-validated against the stored provider/kind/schema_version)."""
    for attr, value in (("name", name), ("account_id", account_id), ("region", region)):
        if value is not _UNSET:
            setattr(credential, attr, value)
    if (scope_kind is not _UNSET or scope_version is not _UNSET) and scope is _UNSET:
        raise bad_request(
            "invalid_scope", "scope: required when scope_kind or scope_version changes"
        )
    if scope is not _UNSET:
        new_kind = credential.scope_kind if scope_kind is _UNSET else scope_kind
        new_kind = registry.normalize_scope_kind(new_kind)
        new_version = credential.scope_version if scope_version is _UNSET else scope_version
        scope = _registry_call(
            "invalid_scope",
            registry.validate_scope,
            provider=credential.provider,
            scope_kind=new_kind,
            scope_version=new_version,
            scope=scope,
        )
        credential.scope_kind = new_kind
        credential.scope_version = new_version
        credential.scope = json.loads(registry.canonical_json(scope))
        credential.scope_fingerprint = registry.scope_fingerprint(scope)
    if secret is not _UNSET:
        secret = _registry_call(
            "invalid_secret",
            registry.validate_secret,
            provider=credential.provider,
            kind=credential.kind,
            schema_version=credential.schema_version,
            secret=secret,
        )
        credential.secret = registry.canonical_json(secret)
    return _save_credential(credential)


def credential_reveal(*, credential: Credential) -> dict:
    """The decrypted secret as a JSON object (not a JSON string holding JSON)."""
    return json.loads(credential.secret)


def credential_delete(*, credential: Credential) -> None:
    """Delete a credential; one still referenced (e.g. by a DNS domain) is a 409.

    `Domain.credential` is RESTRICT (so the organization's own cascade may delete both); a
    direct delete of a credential in use raises RestrictedError."""
    try:
        with transaction.atomic():
            credential.delete()
    except (RestrictedError, ProtectedError):
        raise conflict(
            "credential_in_use", "credential is still referenced (e.g. by a DNS domain)"
        ) from None


# --- Load balancers --------------------------------------------------------------------------


@transaction.atomic
def load_balancer_delete(*, load_balancer: LoadBalancer) -> None:
    """Delete a load balancer. Clusters using it (apps or GlueOps) are detached (the foreign
    keys are SET NULL) and put back to `pre_pending` in the same transaction. Nothing refers to
    a load balancer with PROTECT/RESTRICT today, so the 409 `load_balancer_in_use` below only
    guards a relation added later."""
    cluster_release_references(load_balancer=load_balancer)
    try:
        with transaction.atomic():
            load_balancer.delete()
    except (RestrictedError, ProtectedError):
        raise conflict(
            "load_balancer_in_use", "load balancer is still referenced elsewhere"
        ) from None

"""Non-trivial reads of the infrastructure app."""

from __future__ import annotations

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from apps.infrastructure.models import Credential, Server, SSHKey


def ssh_keys_with_server_count() -> QuerySet[SSHKey]:
    """SSH keys annotated with `server_count` (servers using each key), newest first, in one
    query however many keys and servers there are. The private key is loaded as ciphertext and
    only decrypted if a reveal/download reads it."""
    servers = (
        Server.objects.filter(ssh_key_id=OuterRef("pk"))
        .order_by()
        .values("ssh_key_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return SSHKey.objects.annotate(
        server_count=Coalesce(Subquery(servers, output_field=IntegerField()), 0)
    ).order_by("-created_at")


def credential_scope_allows(credential: Credential, *, service: str) -> bool:
    """Whether an AWS credential's scope covers `service` (e.g. "route53"): a provider-wide
    scope does, a service scope names it, a resource scope's ARN belongs to it
    (`arn:aws:route53:::hostedzone/...`)."""
    if credential.provider != "aws":
        return False
    scope = credential.scope if isinstance(credential.scope, dict) else {}
    if credential.scope_kind == "provider":
        return True
    if credential.scope_kind == "service":
        return scope.get("service") == service
    if credential.scope_kind == "resource":
        parts = str(scope.get("arn", "")).split(":")
        return len(parts) >= 6 and parts[2] == service
    return False

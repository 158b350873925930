"""Non-trivial reads of the infrastructure app."""

from __future__ import annotations

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from apps.infrastructure.models import Server, SSHKey


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

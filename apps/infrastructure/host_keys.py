"""Pinning and forgetting a server's SSH host key: the two writes the SSH client itself needs,
kept below both the client and the services so neither imports the other."""

from __future__ import annotations

from django.utils import timezone

from apps.infrastructure.models import Server


def server_reset_host_key(*, server: Server) -> Server:
    """Forget the pinned SSH host key, so the next connection learns it again."""
    server.ssh_host_key = ""
    server.ssh_host_key_algo = ""
    server.save(update_fields=["ssh_host_key", "ssh_host_key_algo", "updated_at"])
    return server


def server_pin_host_key(*, server: Server, algo: str, key_b64: str) -> bool:
    """Pin a host key on first contact. Compare-and-set: only a server with no pinned key takes
    it, so two concurrent first contacts cannot overwrite each other. True if pinned now."""
    changed = Server.objects.filter(pk=server.pk, ssh_host_key="").update(
        ssh_host_key=key_b64, ssh_host_key_algo=algo, updated_at=timezone.now()
    )
    if changed:
        server.ssh_host_key, server.ssh_host_key_algo = key_b64, algo
    return bool(changed)

"""Who is acting, and from where, for the audit entries written while they act.

A request sets it in `AuditContextMiddleware` (the Django request is kept and read lazily,
because DRF authenticates inside the view and writes `user`/`auth` back onto it); the job
runner sets it for the run (`job_actor`). Anything else (management commands, beat tasks,
shells) is the system.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from apps.core.logging import request_id_var


@dataclass(frozen=True)
class Actor:
    type: str
    id: str = ""
    label: str = ""
    organization_id: str = ""


@dataclass
class AuditContext:
    request: Any = None
    actor: Actor | None = None
    ip: str = ""
    user_agent: str = ""
    request_id: str = ""


_context: contextvars.ContextVar[AuditContext | None] = contextvars.ContextVar(
    "audit_context", default=None
)

SYSTEM = Actor(type="system", label="system")


def current() -> AuditContext:
    return _context.get() or AuditContext(request_id=request_id_var.get() or "")


@contextmanager
def bound(ctx: AuditContext) -> Iterator[AuditContext]:
    token = _context.set(ctx)
    try:
        yield ctx
    finally:
        _context.reset(token)


@contextmanager
def job_actor(job: Any) -> Iterator[AuditContext]:
    """Entries written while a job runs name the job (and its kind) as the actor."""
    actor = Actor(
        type="job",
        id=str(job.pk),
        label=str(getattr(job, "kind", "")),
        organization_id=str(job.organization_id or ""),
    )
    with bound(AuditContext(actor=actor)) as ctx:
        yield ctx


def _request_actor(request: Any) -> Actor | None:
    """The principal DRF (or the session middleware) put on the Django request, if any."""
    from apps.core.tenancy import OrgKeyPrincipal

    auth = getattr(request, "auth", None)
    if isinstance(auth, OrgKeyPrincipal):
        return Actor(
            type="org_key",
            id=str(auth.key_id),
            label=f"org key {auth.key_id}",
            organization_id=str(auth.organization_id),
        )
    # DRF writes the user it authenticated back onto the Django request; console pages have
    # AuthenticationMiddleware's lazy session user there.
    user = getattr(request, "user", None)
    if user is not None and getattr(user, "is_authenticated", False) and getattr(user, "pk", None):
        return Actor(type="user", id=str(user.pk), label=str(user)[:255])
    return None


def resolve() -> tuple[Actor, AuditContext]:
    """The acting principal and the context for an entry written now."""
    ctx = current()
    actor = ctx.actor
    if actor is None and ctx.request is not None:
        actor = _request_actor(ctx.request) or Actor(type="anonymous")
    return actor or SYSTEM, ctx

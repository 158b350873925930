"""Workspace groups → organization roles: the settings, the mappings, and the sync itself.

Who decides what (docs/identity.md, "Workspace groups"):
- A mapping says: members of this Google group hold at least this role. A person in several
  mapped groups gets the highest of their roles.
- Additive mode only adds members and raises roles. Authoritative mode also lowers or removes,
  once the groups no longer grant it, what sync itself granted (a `GroupGrant`), never below the
  role the person had before sync raised it, and never a role someone set by hand.
- The last owner is never demoted or removed; a read that fails or is incomplete changes nothing.
- Every role sync changes is one `member.role_change` audit entry naming the group.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.accounts.models import OAuthIdentity, User
from apps.audit import context as audit_context
from apps.audit import events
from apps.audit.services import audit_record
from apps.core.api.errors import bad_request, conflict
from apps.groupsync import clients
from apps.groupsync.models import GroupGrant, GroupRoleMapping, GroupSyncSettings
from apps.orgs.models import Membership, Organization
from apps.orgs.services import membership_owners_lock

logger = logging.getLogger(__name__)

RANK = {"": 0, "viewer": 1, "member": 2, "admin": 3, "owner": 4}
SYNC_ACTOR = audit_context.Actor(type="system", id="group_sync", label="Workspace group sync")
# Reads one person's groups for one organization's settings, by a deadline (time.monotonic(),
# or None for the timeout alone). The network edge: tests give the real client pointed at a
# loopback stand-in.
GroupsReader = Callable[[GroupSyncSettings, str, "float | None"], clients.GroupsRead]


# --- settings and mappings ---------------------------------------------------------------------


def group_sync_settings_get(*, organization_id: uuid.UUID) -> GroupSyncSettings:
    """The organization's settings (unsaved defaults when it has none yet)."""
    found = GroupSyncSettings.objects.filter(organization_id=organization_id).first()
    return found or GroupSyncSettings(organization_id=organization_id)


@transaction.atomic
def group_sync_settings_update(
    *, organization_id: uuid.UUID, changes: dict[str, Any]
) -> GroupSyncSettings:
    """Change any of `enabled`, `mode`, `service_account_key` (the JSON key file; "" removes
    it), `delegated_subject`. Sync can be on only with a key and a subject."""
    row, _ = GroupSyncSettings.objects.select_for_update().get_or_create(
        organization_id=organization_id
    )
    if "service_account_key" in changes:
        text = (changes["service_account_key"] or "").strip()
        if text:
            try:
                key = clients.service_account_key_parse(text)
            except ValueError as exc:
                raise bad_request("validation_error", f"service_account_key: {exc}") from None
            row.service_account_key = text
            row.service_account_email = key.client_email
        else:
            row.service_account_key = ""
            row.service_account_email = ""
    if "delegated_subject" in changes:
        row.delegated_subject = (changes["delegated_subject"] or "").strip().lower()
    if "mode" in changes:
        if changes["mode"] not in GroupSyncSettings.Mode.values:
            raise bad_request("validation_error", "mode: must be additive or authoritative")
        row.mode = changes["mode"]
    if "enabled" in changes:
        row.enabled = bool(changes["enabled"])
    if row.enabled and not (row.service_account_key and row.delegated_subject):
        raise bad_request(
            "validation_error",
            "enabled: set service_account_key and delegated_subject before turning sync on",
        )
    row.save()
    return row


def _group_email(value: str) -> str:
    email = (value or "").strip()
    # ASCII is checked before lower-casing: str.lower() maps some non-ASCII letters to ASCII
    # ones (the Kelvin sign to "k"), which would let a look-alike address through as another.
    if not email.isascii() or not clients.EMAIL.fullmatch(email):
        raise bad_request("validation_error", "group_email: must be a group's e-mail address")
    return email.lower()


def _role(value: str) -> str:
    if value not in Membership.Role.values:
        roles = ", ".join(Membership.Role.values)
        raise bad_request("validation_error", f"role: must be one of {roles}")
    return value


PRIVILEGED = {Membership.Role.OWNER, Membership.Role.ADMIN}


def _check_privileged(role: str, confirmed: bool) -> None:
    # Whoever may join the group (or add others to it) takes the role: for owner and admin the
    # person mapping it must say they checked that only administrators control membership.
    if role in PRIVILEGED and not confirmed:
        raise bad_request(
            "validation_error",
            "confirm_privileged: mapping a group to owner or admin gives the role to anyone who "
            "can join the group; confirm that only administrators manage its members",
        )


def group_mapping_create(
    *,
    organization_id: uuid.UUID,
    group_email: str,
    role: str,
    confirm_privileged: bool = False,
) -> GroupRoleMapping:
    """Members of the group will hold at least `role`. One mapping per group (409). Owner and
    admin need `confirm_privileged` (400 without)."""
    email, role = _group_email(group_email), _role(role)
    _check_privileged(role, confirm_privileged)
    try:
        with transaction.atomic():
            return GroupRoleMapping.objects.create(
                organization_id=organization_id, group_email=email, role=role
            )
    except IntegrityError:
        raise conflict("mapping_exists", "group_email: this group is already mapped") from None


def group_mapping_update(*, mapping: GroupRoleMapping, changes: dict[str, Any]) -> GroupRoleMapping:
    """Change the group or the role of a mapping (takes effect at the next sync). Making it an
    owner or admin mapping, or pointing such a mapping at another group, needs
    `changes["confirm_privileged"]`."""
    before = (mapping.group_email, mapping.role)
    if "group_email" in changes:
        mapping.group_email = _group_email(changes["group_email"])
    if "role" in changes:
        mapping.role = _role(changes["role"])
    if (mapping.group_email, mapping.role) != before:
        _check_privileged(mapping.role, bool(changes.get("confirm_privileged")))
    try:
        with transaction.atomic():
            mapping.save()
    except IntegrityError:
        raise conflict("mapping_exists", "group_email: this group is already mapped") from None
    return mapping


def group_mapping_delete(*, mapping: GroupRoleMapping) -> None:
    """Stop granting the mapping's role; authoritative sync takes it back at the next sync."""
    mapping.delete()


# --- sync --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoleChange:
    user_id: Any
    before: str  # "" when not a member
    after: str  # "" when removed
    group: str


@dataclass(frozen=True)
class UserSync:
    """What syncing one person did: the change (or None), and whether their groups were read
    transitively (False: the Directory API fallback, so nothing was taken away)."""

    change: RoleChange | None
    transitive: bool


def groups_read(
    config: GroupSyncSettings, email: str, deadline: float | None = None
) -> clients.GroupsRead:
    """The groups `email` belongs to, read with the organization's service account."""
    key = clients.service_account_key_parse(str(config.service_account_key))
    client = clients.WorkspaceGroupsClient(
        key=key, subject=config.delegated_subject, cache_as=str(config.organization_id)
    )
    return client.groups_of(email, deadline=deadline)


def _granted(mappings: Iterable[GroupRoleMapping], groups: set[str]) -> tuple[str, str]:
    """(highest role the groups grant, the group granting it), or ("", "")."""
    best = ("", "")
    for mapping in sorted(mappings, key=lambda m: m.group_email):
        if mapping.group_email in groups and RANK[mapping.role] > RANK[best[0]]:
            best = (mapping.role, mapping.group_email)
    return best


def _audit(organization_id: Any, membership_id: Any, user: User, change: RoleChange) -> None:
    # The same events as any other path: a membership sync creates or removes is a
    # create/delete entry, a role it changes a role change; `metadata` says it was sync.
    if not change.before:
        event = events.RESOURCE_CREATE
    elif not change.after:
        event = events.RESOURCE_DELETE
    else:
        event = events.MEMBER_ROLE_CHANGE
    audit_record(
        event=event,
        organization_id=organization_id,
        object_type="orgs.membership",
        object_id=membership_id,
        object_repr=f"{user} in {organization_id}",
        changes={"role": {"before": change.before or None, "after": change.after or None}},
        metadata={"source": "group_sync", "group": change.group, "user_id": str(user.pk)},
        actor=SYNC_ACTOR,
    )


def group_sync_apply(
    *,
    organization: Organization,
    user: User,
    groups: Iterable[str],
    mode: str,
    transitive: bool = True,
) -> RoleChange | None:
    """`_apply` with sync as the actor of every entry written (the `GroupGrant` bookkeeping
    too), whoever's request or sign-in triggered it; the request id is kept."""
    ctx = audit_context.AuditContext(
        actor=SYNC_ACTOR, request_id=audit_context.current().request_id
    )
    with audit_context.bound(ctx):
        return _apply(
            organization=organization, user=user, groups=groups, mode=mode, transitive=transitive
        )


@transaction.atomic
def _apply(
    *,
    organization: Organization,
    user: User,
    groups: Iterable[str],
    mode: str,
    transitive: bool,
) -> RoleChange | None:
    """Bring one person's role in one organization in line with a complete list of their
    groups. With `transitive=False` (direct memberships only) roles are only raised, whatever
    the mode: a role granted through a nested group would look revoked. The membership row is
    written with `update()`/`bulk_create()` so the one audit entry is this service's, naming
    the group (the model signals would write one without)."""
    granted, group = _granted(
        GroupRoleMapping.objects.filter(organization=organization), {g.lower() for g in groups}
    )
    owners = membership_owners_lock(organization=organization)
    current = (
        Membership.objects.select_for_update().filter(organization=organization, user=user).first()
    )
    grant = GroupGrant.objects.filter(membership=current).first() if current else None
    if grant is not None and current is not None and grant.role != current.role:
        grant.delete()  # a person changed the role since: theirs now
        grant = None
    now_role = current.role if current else ""
    if RANK[granted] > RANK[now_role]:
        base = grant.base_role if grant else now_role
        return _set_role(organization, user, current, granted, base, group)
    if grant is not None and granted == now_role and grant.group_email != group:
        # Still granted, now by another group: the one authoritative sync will name.
        GroupGrant.objects.filter(pk=grant.pk).update(group_email=group)
    authoritative = mode == GroupSyncSettings.Mode.AUTHORITATIVE and transitive
    if grant is None or current is None or not authoritative:
        return None
    target = granted if RANK[granted] >= RANK[grant.base_role] else grant.base_role
    if RANK[target] >= RANK[now_role]:
        return None
    if now_role == Membership.Role.OWNER and len(owners) <= 1:
        logger.warning(
            "group_sync_kept_last_owner",
            extra={"organization_id": str(organization.pk), "user_id": str(user.pk)},
        )
        return None
    reason = group or grant.group_email
    if target == grant.base_role:
        grant.delete()
        if not target:
            change = RoleChange(user.pk, now_role, "", reason)
            _audit(organization.pk, current.pk, user, change)
            # Raw delete: no signal entry beside this one (the grant is gone already).
            Membership.objects.filter(pk=current.pk)._raw_delete(Membership.objects.db)
            return change
        return _set_role(organization, user, current, target, "", reason, grant_it=False)
    return _set_role(organization, user, current, target, grant.base_role, reason)


def _set_role(
    organization: Organization,
    user: User,
    current: Membership | None,
    role: str,
    base: str,
    group: str,
    *,
    grant_it: bool = True,
) -> RoleChange:
    before = current.role if current else ""
    if current is None:
        current = Membership(organization=organization, user=user, role=role)
        Membership.objects.bulk_create([current])
    else:
        Membership.objects.filter(pk=current.pk).update(role=role, updated_at=timezone.now())
    if grant_it:
        GroupGrant.objects.update_or_create(
            membership=current,
            defaults={
                "organization": organization,
                "role": role,
                "base_role": base,
                "group_email": group,
            },
        )
    change = RoleChange(user.pk, before, role, group)
    _audit(organization.pk, current.pk, user, change)
    return change


def _usable(config: GroupSyncSettings) -> bool:
    return bool(config.enabled and config.service_account_key and config.delegated_subject)


def _record(config: GroupSyncSettings, status: str, error: str = "") -> None:
    GroupSyncSettings.objects.filter(pk=config.pk).update(
        last_sync_at=timezone.now(), last_sync_status=status, last_sync_error=error[:255]
    )


def workspace_domains(config: GroupSyncSettings) -> set[str]:
    """The domains of the organization's Workspace: its delegated admin's domain and, once
    verified, the organization's own domain. Only people whose Google account this Workspace
    manages (ID token `hd` one of these) are synced: a consumer account or another Workspace's
    account carrying an address here is not the person the groups list."""
    domains = {config.delegated_subject.rsplit("@", 1)[-1].lower()} - {""}
    org = config.organization
    if org.domain and org.domain_verified_at is not None:
        domains.add(org.domain.lower())
    return domains


def _managed_by(config: GroupSyncSettings, email: str, hd: str) -> bool:
    hd = (hd or "").strip().lower()
    return bool(hd) and email.rsplit("@", 1)[-1].lower() == hd and hd in workspace_domains(config)


def group_sync_user(
    *,
    config: GroupSyncSettings,
    user: User,
    email: str,
    reader: GroupsReader = groups_read,
    deadline: float | None = None,
) -> UserSync:
    """Read one person's groups and apply them in the settings' organization. A read that
    fails raises `GroupsReadError` before anything is changed."""
    try:
        read = reader(config, email, deadline)
    except ValueError as exc:  # a stored key that no longer parses
        raise clients.GroupsReadError(f"service account key: {exc}") from None
    change = group_sync_apply(
        organization=config.organization,
        user=user,
        groups=read.groups,
        mode=config.mode,
        transitive=read.transitive,
    )
    return UserSync(change, read.transitive)


# Reads at sign-in run here so that a hard deadline can be kept: `requests` bounds each socket
# read, not a whole response. A read past the deadline is abandoned (it ends by itself at its
# own timeout) and its organization left unchanged.
_SIGN_IN_READS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="groupsync-sign-in")


def _read_by(reader: GroupsReader, deadline: float) -> GroupsReader:
    def read(config: GroupSyncSettings, email: str, _: float | None) -> clients.GroupsRead:
        str(config.service_account_key)  # decrypt here: the thread must not use the database
        future = _SIGN_IN_READS.submit(reader, config, email, deadline)
        try:
            return future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            raise clients.GroupsReadError("the sign-in's time for groups ran out") from None

    return read


def group_sync_at_sign_in(
    *, user: User, email: str, hd: str, reader: GroupsReader = groups_read
) -> list[RoleChange]:
    """After a Google sign-in matched `user`: sync the organizations they belong to and those
    whose verified domain is the address's domain, where the organization's Workspace manages
    the account (`hd`, see `workspace_domains`). All of it within one budget
    (GROUP_SYNC_SIGN_IN_SECONDS): organizations not reached by then are left as they are for
    the schedule. Never raises: a failure is logged and the sign-in goes on, with nothing
    granted or taken in that organization."""
    changes: list[RoleChange] = []
    deadline = time.monotonic() + float(settings.GROUP_SYNC_SIGN_IN_SECONDS)
    timed = _read_by(reader, deadline)
    try:
        domain = email.rsplit("@", 1)[-1].lower()
        member_of = set(
            Membership.objects.filter(user=user).values_list("organization_id", flat=True)
        )
        # Cross-org read on purpose: which organizations' groups decide this person's roles.
        configs = GroupSyncSettings.objects.select_related("organization").filter(enabled=True)
        for config in list(configs):
            org = config.organization
            by_domain = org.domain_verified_at is not None and (org.domain or "").lower() == domain
            if not (org.pk in member_of or by_domain) or not _usable(config):
                continue
            if not _managed_by(config, email, hd):
                continue
            if time.monotonic() >= deadline:
                logger.warning(
                    "group_sync_deferred",
                    extra={"organization_id": str(org.pk), "user_id": str(user.pk)},
                )
                continue
            try:
                change = group_sync_user(config=config, user=user, email=email, reader=timed).change
            except Exception as exc:  # noqa: BLE001 - groups never block a sign-in
                logger.warning(
                    "group_sync_failed",
                    extra={
                        "organization_id": str(org.pk),
                        "user_id": str(user.pk),
                        "error": _error_text(exc),
                    },
                )
                # Owners see it on the settings, as a failed scheduled run shows.
                with contextlib.suppress(DatabaseError):
                    _record(config, "failed", f"at a sign-in: {_error_text(exc)}")
                continue
            if change is not None:
                changes.append(change)
    except Exception:  # noqa: BLE001 - see the docstring
        logger.warning("group_sync_failed", extra={"user_id": str(user.pk)}, exc_info=True)
    return changes


def _error_text(exc: BaseException) -> str:
    # Our read errors carry a safe message; anything else is named by its type only.
    if isinstance(exc, clients.GroupsReadError):
        return str(exc)
    return type(exc).__name__


def google_email(user: User, config: GroupSyncSettings) -> str:
    """The address to read `user`'s groups by for `config`'s organization: that of their
    Google identity managed by the organization's Workspace (`hd`), the most recently signed-in
    one if several; "" when none is (consumer accounts, another Workspace's accounts, and
    identities not seen since `hd` was recorded are not synced)."""
    identities = OAuthIdentity.objects.filter(user=user, provider="google").order_by("-updated_at")
    for identity in identities:
        if identity.email and _managed_by(config, identity.email, identity.hd):
            return identity.email
    return ""


def group_sync_organization(
    *, config: GroupSyncSettings, reader: GroupsReader = groups_read
) -> tuple[int, int]:
    """Re-read the groups of every member who signs in with Google; (changed, failed). A
    person whose read fails keeps their role; others are still synced. Status "degraded" when
    some groups could only be read direct-only (nothing was taken away from those people)."""
    if not _usable(config):
        return (0, 0)
    changed = failed = 0
    error = ""
    degraded = False
    memberships = Membership.objects.filter(organization_id=config.organization_id).select_related(
        "user"
    )
    for membership in list(memberships):
        email = google_email(membership.user, config)
        if not email:
            continue
        try:
            synced = group_sync_user(
                config=config, user=membership.user, email=email, reader=reader
            )
        except clients.RateLimited as exc:
            # Google asked us to slow down: reading on would only spend more of the quota. The
            # rest of the members are read at the next run.
            failed += 1
            error = _error_text(exc)
            logger.warning(
                "group_sync_rate_limited",
                extra={"organization_id": str(config.organization_id), "error": error},
            )
            break
        except (clients.GroupsReadError, DatabaseError) as exc:
            # One person's failure must not stop the others (a concurrent sign-in that created
            # the same membership first is an IntegrityError here).
            failed += 1
            error = _error_text(exc)
            logger.warning(
                "group_sync_failed",
                extra={
                    "organization_id": str(config.organization_id),
                    "user_id": str(membership.user_id),
                    "error": error,
                },
            )
            continue
        changed += synced.change is not None
        degraded = degraded or not synced.transitive
    if error:
        _record(config, "failed", error)
    elif degraded:
        _record(config, "degraded", "direct groups only (Directory API): nothing was lowered")
    else:
        _record(config, "ok")
    return (changed, failed)


def _lock_key(organization_id: Any) -> str:
    return f"groupsync:running:{organization_id}"


def group_sync_organization_once(
    *, config_id: Any, hold_seconds: int, reader: GroupsReader = groups_read
) -> int | None:
    """`group_sync_organization` unless a run for the same organization is still going (then
    None: runs never overlap however the interval and the time limit are set). The lock is a
    cache entry that expires after `hold_seconds` should its holder die."""
    config = GroupSyncSettings.objects.select_related("organization").filter(pk=config_id).first()
    if config is None or not config.enabled:
        return None
    key = _lock_key(config.organization_id)
    if not cache.add(key, 1, timeout=hold_seconds):
        logger.info(
            "group_sync_already_running", extra={"organization_id": str(config.organization_id)}
        )
        return None
    try:
        return group_sync_organization(config=config, reader=reader)[0]
    except SoftTimeLimitExceeded:
        _record(config, "failed", "the run took longer than its time limit")
        raise
    except Exception as exc:  # noqa: BLE001 - recorded on the organization, not lost
        logger.warning(
            "group_sync_failed",
            extra={"organization_id": str(config.organization_id), "error": _error_text(exc)},
        )
        _record(config, "failed", _error_text(exc))
        return 0
    finally:
        cache.delete(key)


def group_sync_due() -> list[Any]:
    """The settings of every organization with sync on, the longest unsynced first (so an
    organization a slow run kept waiting goes first next time)."""
    # Cross-org read on purpose: the schedule serves every organization.
    return list(
        GroupSyncSettings.objects.filter(enabled=True)
        .order_by(F("last_sync_at").asc(nulls_first=True), "pk")
        .values_list("pk", flat=True)
    )


def group_sync_all(*, reader: GroupsReader = groups_read, hold_seconds: int = 1800) -> int:
    """Every organization with sync on, one after the other, in this process (the schedule
    queues one task per organization instead). Returns the roles changed. One organization's
    unexpected failure is recorded on it and the run goes on to the next."""
    total = 0
    for config_id in group_sync_due():
        total += (
            group_sync_organization_once(
                config_id=config_id, hold_seconds=hold_seconds, reader=reader
            )
            or 0
        )
    return total

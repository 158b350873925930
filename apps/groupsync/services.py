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

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import OAuthIdentity, User
from apps.audit import context as audit_context
from apps.audit import events
from apps.audit.services import audit_record
from apps.core.api.errors import bad_request, conflict
from apps.groupsync import clients
from apps.groupsync.models import GroupGrant, GroupRoleMapping, GroupSyncSettings
from apps.orgs.models import Membership, Organization

logger = logging.getLogger(__name__)

RANK = {"": 0, "viewer": 1, "member": 2, "admin": 3, "owner": 4}
SYNC_ACTOR = audit_context.Actor(type="system", id="group_sync", label="Workspace group sync")
# Reads one person's groups for one organization's settings (the network edge; tests give the
# real client pointed at a loopback stand-in).
GroupsReader = Callable[[GroupSyncSettings, str], list[str]]


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
    email = (value or "").strip().lower()
    if not clients.EMAIL.match(email):
        raise bad_request("validation_error", "group_email: must be a group's e-mail address")
    return email


def _role(value: str) -> str:
    if value not in Membership.Role.values:
        roles = ", ".join(Membership.Role.values)
        raise bad_request("validation_error", f"role: must be one of {roles}")
    return value


def group_mapping_create(
    *, organization_id: uuid.UUID, group_email: str, role: str
) -> GroupRoleMapping:
    """Members of the group will hold at least `role`. One mapping per group (409)."""
    try:
        with transaction.atomic():
            return GroupRoleMapping.objects.create(
                organization_id=organization_id,
                group_email=_group_email(group_email),
                role=_role(role),
            )
    except IntegrityError:
        raise conflict("mapping_exists", "group_email: this group is already mapped") from None


def group_mapping_update(*, mapping: GroupRoleMapping, changes: dict[str, Any]) -> GroupRoleMapping:
    """Change the group or the role of a mapping (takes effect at the next sync)."""
    if "group_email" in changes:
        mapping.group_email = _group_email(changes["group_email"])
    if "role" in changes:
        mapping.role = _role(changes["role"])
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


def groups_read(config: GroupSyncSettings, email: str) -> list[str]:
    """The groups `email` belongs to, read with the organization's service account."""
    key = clients.service_account_key_parse(str(config.service_account_key))
    client = clients.WorkspaceGroupsClient(key=key, subject=config.delegated_subject)
    return client.groups_of(email)


def _granted(mappings: Iterable[GroupRoleMapping], groups: set[str]) -> tuple[str, str]:
    """(highest role the groups grant, the group granting it), or ("", "")."""
    best = ("", "")
    for mapping in sorted(mappings, key=lambda m: m.group_email):
        if mapping.group_email in groups and RANK[mapping.role] > RANK[best[0]]:
            best = (mapping.role, mapping.group_email)
    return best


def _audit(organization_id: Any, membership_id: Any, user: User, change: RoleChange) -> None:
    audit_record(
        event=events.MEMBER_ROLE_CHANGE,
        organization_id=organization_id,
        object_type="orgs.membership",
        object_id=membership_id,
        object_repr=f"{user} in {organization_id}",
        changes={"role": {"before": change.before or None, "after": change.after or None}},
        metadata={"source": "group_sync", "group": change.group, "user_id": str(user.pk)},
        actor=SYNC_ACTOR,
    )


@transaction.atomic
def group_sync_apply(
    *, organization: Organization, user: User, groups: Iterable[str], mode: str
) -> RoleChange | None:
    """Bring one person's role in one organization in line with a complete list of their
    groups. The membership row is written with `update()`/`bulk_create()` so the one audit
    entry is this service's, naming the group (the model signals would write one without)."""
    granted, group = _granted(
        GroupRoleMapping.objects.filter(organization=organization), {g.lower() for g in groups}
    )
    owners = list(
        Membership.objects.select_for_update()
        .filter(organization=organization, role=Membership.Role.OWNER)
        .values_list("pk", flat=True)
    )
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
    if grant is None or current is None or mode != GroupSyncSettings.Mode.AUTHORITATIVE:
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


def _record(config: GroupSyncSettings, error: str) -> None:
    GroupSyncSettings.objects.filter(pk=config.pk).update(
        last_sync_at=timezone.now(),
        last_sync_status="failed" if error else "ok",
        last_sync_error=error[:255],
    )


def group_sync_user(
    *, config: GroupSyncSettings, user: User, email: str, reader: GroupsReader = groups_read
) -> RoleChange | None:
    """Read one person's groups and apply them in the settings' organization. A read that
    fails raises `GroupsReadError` before anything is changed."""
    try:
        groups = reader(config, email)
    except ValueError as exc:  # a stored key that no longer parses
        raise clients.GroupsReadError(f"service account key: {exc}") from None
    return group_sync_apply(
        organization=config.organization, user=user, groups=groups, mode=config.mode
    )


def group_sync_at_sign_in(
    *, user: User, email: str, workspace_managed: bool, reader: GroupsReader = groups_read
) -> list[RoleChange]:
    """After a Google sign-in matched `user`: sync the organizations they belong to and, for a
    Workspace-managed address, those whose verified domain is the address's domain. Never
    raises: a failure of the groups API (or of anything else here) is logged and the sign-in
    goes on, with nothing granted or taken."""
    changes: list[RoleChange] = []
    try:
        domain = email.rsplit("@", 1)[-1].lower()
        member_of = set(
            Membership.objects.filter(user=user).values_list("organization_id", flat=True)
        )
        # Cross-org read on purpose: which organizations' groups decide this person's roles.
        configs = GroupSyncSettings.objects.select_related("organization").filter(enabled=True)
        for config in list(configs):
            org = config.organization
            ours = org.pk in member_of
            by_domain = (
                workspace_managed
                and org.domain_verified_at is not None
                and (org.domain or "").lower() == domain
            )
            if not (ours or by_domain) or not _usable(config):
                continue
            try:
                change = group_sync_user(config=config, user=user, email=email, reader=reader)
            except Exception as exc:  # noqa: BLE001 - groups never block a sign-in
                logger.warning(
                    "group_sync_failed",
                    extra={
                        "organization_id": str(org.pk),
                        "user_id": str(user.pk),
                        "error": _error_text(exc),
                    },
                )
                continue
            if change is not None:
                changes.append(change)
    except Exception:  # noqa: BLE001 - see the docstring
        logger.warning("group_sync_failed", extra={"user_id": str(user.pk)}, exc_info=True)
    return changes


def _error_text(exc: Exception) -> str:
    # Our read errors carry a safe message; anything else is named by its type only.
    if isinstance(exc, clients.GroupsReadError):
        return str(exc)
    return type(exc).__name__


def google_email(user: User) -> str:
    """The address the person signs in to Google with (their newest Google identity)."""
    identity = (
        OAuthIdentity.objects.filter(user=user, provider="google").order_by("-created_at").first()
    )
    return identity.email if identity is not None and identity.email else ""


def group_sync_organization(
    *, config: GroupSyncSettings, reader: GroupsReader = groups_read
) -> tuple[int, int]:
    """Re-read the groups of every member who signs in with Google; (changed, failed). A
    person whose read fails keeps their role; others are still synced."""
    if not _usable(config):
        return (0, 0)
    changed = failed = 0
    error = ""
    memberships = Membership.objects.filter(organization_id=config.organization_id).select_related(
        "user"
    )
    for membership in list(memberships):
        email = google_email(membership.user)
        if not email:
            continue
        try:
            change = group_sync_user(
                config=config, user=membership.user, email=email, reader=reader
            )
        except (clients.GroupsReadError, DatabaseError) as exc:
            # One person's failure must not stop the others (a concurrent sign-in that created
            # the same membership first is an IntegrityError here). Anything else, the task's
            # time limit included, ends the run.
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
        changed += change is not None
    _record(config, error)
    return (changed, failed)


def group_sync_all(*, reader: GroupsReader = groups_read) -> int:
    """The schedule's run: every organization with sync on. Returns the roles changed."""
    # Cross-org read on purpose: the schedule serves every organization.
    configs = GroupSyncSettings.objects.filter(enabled=True).select_related("organization")
    return sum(group_sync_organization(config=c, reader=reader)[0] for c in configs)

"""Organization services: create/update/delete orgs, memberships (with the last-owner rule)."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.core.api.errors import APIError, bad_request, conflict, not_found
from apps.orgs.models import Membership, Organization


def _clean_domain(domain: str | None) -> str | None:
    domain = (domain or "").strip().lower().rstrip(".")
    return domain or None


@transaction.atomic
def organization_create(*, creator: User, name: str, domain: str | None = None) -> Organization:
    """A new organization; its creator becomes its owner. The domain is unverified (it does
    nothing until a platform admin verifies it)."""
    org = Organization.objects.create(name=name.strip(), domain=_clean_domain(domain))
    Membership.objects.create(user=creator, organization=org, role=Membership.Role.OWNER)
    return org


def organization_update(
    *,
    organization: Organization,
    name: str | None = None,
    domain: str | None = None,
    domain_given: bool = False,
) -> Organization:
    """Rename and/or change the domain. Changing the domain drops its verification."""
    fields = ["updated_at"]
    if name is not None:
        organization.name = name.strip()
        fields.append("name")
    if domain_given:
        new_domain = _clean_domain(domain)
        if new_domain != organization.domain:
            organization.domain = new_domain
            organization.domain_verified_at = None
            fields += ["domain", "domain_verified_at"]
    organization.save(update_fields=fields)
    return organization


def organization_verify_domain(*, organization: Organization) -> Organization:
    """Mark the domain verified (platform admins only, from the admin console). A domain
    verified by another organization is a 409."""
    if not organization.domain:
        raise bad_request("validation_error", "domain: the organization has no domain")
    organization.domain_verified_at = timezone.now()
    try:
        with transaction.atomic():
            organization.save(update_fields=["domain_verified_at", "updated_at"])
    except IntegrityError:
        raise conflict("domain_taken", "another organization has verified this domain") from None
    return organization


def organization_delete(*, organization: Organization) -> None:
    """Delete the organization and, by cascade, everything it owns."""
    organization.delete()


def _lock_owners(organization: Organization) -> list[Membership]:
    # Lock the org's owner rows so two concurrent demotions cannot both see "another owner".
    return list(
        Membership.objects.select_for_update()
        .filter(organization=organization, role=Membership.Role.OWNER)
        .order_by("pk")
    )


def membership_owners_lock(*, organization: Organization) -> list[Membership]:
    """Lock the organization's owner rows (in primary-key order, the order every writer uses,
    so two writers cannot deadlock) and return them; call inside a transaction."""
    return _lock_owners(organization)


@transaction.atomic
def membership_upsert(
    *, organization: Organization, user_id, role: str, acting_role: str
) -> Membership:
    """Add a user to the organization or change their role. Only an owner may grant or take
    away the owner role; the last owner cannot be demoted."""
    if role not in Membership.Role.values:
        raise bad_request(
            "validation_error", f"role: must be one of {', '.join(Membership.Role.values)}"
        )
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        raise not_found("user_not_found", "user not found")
    owners = _lock_owners(organization)
    current = (
        Membership.objects.select_for_update().filter(organization=organization, user=user).first()
    )
    touches_owner = role == Membership.Role.OWNER or (
        current is not None and current.role == Membership.Role.OWNER
    )
    if touches_owner and acting_role != Membership.Role.OWNER:
        raise APIError(403, "forbidden", "only an owner may grant or remove the owner role")
    if (
        current is not None
        and current.role == Membership.Role.OWNER
        and role != Membership.Role.OWNER
        and len(owners) <= 1
    ):
        raise conflict("last_owner", "the last owner cannot be demoted")
    if current is None:
        try:
            with transaction.atomic():
                current = Membership.objects.create(organization=organization, user=user, role=role)
        except IntegrityError:
            raise conflict("conflict", "membership changed concurrently; retry") from None
    elif current.role != role:
        current.role = role
        current.save(update_fields=["role", "updated_at"])
    return current


@transaction.atomic
def membership_remove(*, organization: Organization, user_id, acting_role: str) -> None:
    """Remove a user from the organization (no-op if not a member). The last owner cannot be
    removed; only an owner may remove an owner."""
    owners = _lock_owners(organization)
    current = Membership.objects.filter(organization=organization, user_id=user_id).first()
    if current is None:
        return
    if current.role == Membership.Role.OWNER:
        if acting_role != Membership.Role.OWNER:
            raise APIError(403, "forbidden", "only an owner may remove an owner")
        if len(owners) <= 1:
            raise conflict("last_owner", "the last owner cannot be removed")
    current.delete()

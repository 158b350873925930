"""Console pages of organizations and memberships, with the API's role rules: members see their
organizations; owners and admins manage them and their people (through the org services, so the
last-owner and owner-only rules hold here too); only platform admins create organizations or
verify a domain (which enables SSO auto-join)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, cast

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.core import tasks as core_tasks
from apps.core.api.errors import APIError
from apps.core.permissions import Perm
from apps.orgs import services
from apps.orgs.console_base import (
    ORG_FILTER,
    APIRules,
    OrgScopedAdmin,
    OrgScopedInline,
    adopt,
    console_roles,
    is_platform_admin,
    is_saved,
    orgs_allowing,
    record_formset_save,
)
from apps.orgs.models import Membership, Organization
from apps.orgs.serializers import MemberUpsertSerializer, OrgWriteSerializer

MEMBER_RULES = APIRules(create=MemberUpsertSerializer)

if TYPE_CHECKING:
    from apps.accounts.models import User


def acting_role(request: HttpRequest, organization_id: Any) -> str:
    """The role the services judge a console write by; platform admins act as owners."""
    if is_platform_admin(request):
        return Membership.Role.OWNER
    return console_roles(request).get(organization_id, "")


class MembershipInline(OrgScopedInline):
    model = Membership
    exclude = ()
    fields = ["user", "role"]
    autocomplete_fields = ["user"]
    api_rules = MEMBER_RULES

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (
            obj is None or is_platform_admin(request) or Perm.READ_MEMBERS in _perms(request, obj)
        )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return is_platform_admin(request)
        return is_platform_admin(request) or Perm.MANAGE_MEMBERS in _perms(request, obj)


def _perms(request: HttpRequest, org: Organization) -> set[Perm]:
    from apps.core.permissions import ROLE_PERMISSIONS

    return set(ROLE_PERMISSIONS.get(console_roles(request).get(org.pk, ""), frozenset()))


def _save_memberships(request: HttpRequest, organization: Organization, formset: Any) -> None:
    """Membership rows saved through membership_upsert / membership_remove."""
    role = acting_role(request, organization.pk)
    deleted = set(map(id, formset.deleted_forms))
    removed = [form.instance for form in formset.deleted_forms if is_saved(form.instance)]
    for membership in removed:
        services.membership_remove(
            organization=organization, user_id=membership.user_id, acting_role=role
        )
    new: list[Membership] = []
    changed: list[Membership] = []
    for form in formset.forms:
        if id(form) in deleted or not form.has_changed():
            continue
        user, new_role = form.cleaned_data["user"], form.cleaned_data["role"]
        if is_saved(form.instance) and form.initial.get("user") != user.pk:
            services.membership_remove(
                organization=organization, user_id=form.initial["user"], acting_role=role
            )
        saved = services.membership_upsert(
            organization=organization, user_id=user.pk, role=new_role, acting_role=role
        )
        (changed if is_saved(form.instance) else new).append(saved)
    record_formset_save(formset, new=new, changed=changed, deleted=removed)


@admin.register(Organization)
class OrganizationAdmin(OrgScopedAdmin):
    org_field = "id"
    view_perm = Perm.READ
    change_perm = Perm.MANAGE_ORG
    delete_perm = Perm.DELETE_ORG
    list_display = ["name", "domain", "domain_verified_at", "created_at"]
    search_fields = ["name", "domain"]
    readonly_fields = ["domain_verified_at", "created_at", "updated_at"]
    fields = ["name", "domain", "domain_verified_at", "created_at", "updated_at"]
    api_rules = APIRules(create=OrgWriteSerializer)
    inlines = [MembershipInline]
    actions = ["verify_domain", "rotate_data_key"]

    def obj_org_id(self, obj: Any) -> Any:
        return obj.pk

    def get_immutable_fields(self) -> list[str]:
        return []

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Anyone may create an organization through the API; the console leaves that to
        # platform admins, who become its first owner.
        return is_platform_admin(request)

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        if not is_platform_admin(request):
            actions.pop("verify_domain", None)
            if not orgs_allowing(request, Perm.MANAGE_ORG):
                actions.pop("rotate_data_key", None)
        return actions

    def save_model(self, request: HttpRequest, obj: Organization, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if change:
            services.organization_update(
                organization=obj,
                name=data["name"],
                domain=data.get("domain"),
                domain_given="domain" in form.changed_data,
            )
            return
        adopt(
            obj,
            services.organization_create(
                # The admin site lets only signed-in staff in, never an anonymous user.
                creator=cast("User", request.user),
                name=data["name"],
                domain=data.get("domain"),
            ),
        )

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        _save_memberships(request, form.instance, formset)

    def delete_model(self, request: HttpRequest, obj: Organization) -> None:
        services.organization_delete(organization=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for org in queryset:
            services.organization_delete(organization=org)

    @admin.action(description="Mark the domain verified (enables SSO auto-join)")
    def verify_domain(self, request: HttpRequest, queryset: QuerySet) -> None:
        if not is_platform_admin(request):
            self.message_user(request, "Only platform admins verify domains.", messages.ERROR)
            return
        for org in queryset:
            try:
                services.organization_verify_domain(organization=org)
            except APIError as exc:
                self.message_user(request, f"{org}: {exc.message}", messages.ERROR)
                continue
            self.log_change(request, org, f"Verified the domain {org.domain}")

    @admin.action(description="Rotate the data key (re-encrypts its secrets in the background)")
    def rotate_data_key(self, request: HttpRequest, queryset: QuerySet) -> None:
        for org in self.each_allowed(request, queryset, Perm.MANAGE_ORG):
            transaction.on_commit(partial(core_tasks.org_data_key_rotate.delay, str(org.pk)))
            self.log_change(request, org, "Queued a data key rotation")
            self.message_user(request, f"{org}: data key rotation queued")


@admin.register(Membership)
class MembershipAdmin(OrgScopedAdmin):
    view_perm = Perm.READ_MEMBERS
    change_perm = add_perm = delete_perm = Perm.MANAGE_MEMBERS
    immutable_fields = ("user",)
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", ORG_FILTER]
    search_fields = ["user__primary_email", "organization__name"]
    list_select_related = ["user", "organization"]
    autocomplete_fields = ["user", "organization"]
    fields = ["organization", "user", "role", "created_at", "updated_at"]
    readonly_fields = ["created_at", "updated_at"]
    api_rules = MEMBER_RULES

    def save_model(self, request: HttpRequest, obj: Membership, form: Any, change: bool) -> None:
        saved = services.membership_upsert(
            organization=obj.organization,
            user_id=obj.user_id,
            role=obj.role,
            acting_role=acting_role(request, obj.organization_id),
        )
        adopt(obj, saved)

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        services.membership_remove(
            organization=obj.organization,
            user_id=obj.user_id,
            acting_role=acting_role(request, obj.organization_id),
        )

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for membership in queryset:
            self.delete_model(request, membership)

from django.contrib import admin, messages

from apps.core.api.errors import APIError
from apps.orgs import services
from apps.orgs.models import Membership, Organization


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    """Only platform admins reach this console; verifying a domain (which enables SSO
    auto-join into the organization) is done here and nowhere else."""

    list_display = ["name", "domain", "domain_verified_at", "created_at"]
    search_fields = ["name", "domain"]
    readonly_fields = ["id", "domain_verified_at", "created_at", "updated_at"]
    inlines = [MembershipInline]
    actions = ["verify_domain"]

    @admin.action(description="Mark the domain verified (enables SSO auto-join)")
    def verify_domain(self, request, queryset) -> None:
        for org in queryset:
            try:
                services.organization_verify_domain(organization=org)
            except APIError as exc:
                self.message_user(request, f"{org}: {exc.message}", messages.ERROR)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["user__primary_email", "organization__name"]
    raw_id_fields = ["user", "organization"]

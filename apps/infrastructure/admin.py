"""Admin console pages of the infrastructure app. Secret columns (SSH private keys, credential
secrets) are excluded from every page: list, change form and search."""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.infrastructure import services
from apps.infrastructure.models import Credential, LoadBalancer, Server, SSHKey


class _OrgFixedAdmin(admin.ModelAdmin):
    """A row's organization is chosen when it is created and never changed here: secrets are
    bound to their organization, and references must stay inside one."""

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        return [*fields, "organization"] if obj is not None else fields


@admin.register(SSHKey)
class SSHKeyAdmin(_OrgFixedAdmin):
    list_display = ["name", "organization", "key_type", "fingerprint", "created_at"]
    list_filter = ["key_type"]
    search_fields = ["name", "fingerprint"]
    list_select_related = ["organization"]
    exclude = ["private_key"]
    readonly_fields = ["id", "public_key", "fingerprint", "created_at", "updated_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Keys are generated server-side through the API; a form cannot make one.
        return False


@admin.register(Server)
class ServerAdmin(_OrgFixedAdmin):
    list_display = [
        "hostname",
        "organization",
        "role",
        "status",
        "public_ip_address",
        "private_ip_address",
        "created_at",
    ]
    list_filter = ["role", "status"]
    search_fields = ["hostname", "public_ip_address", "private_ip_address"]
    list_select_related = ["organization"]
    raw_id_fields = ["ssh_key"]
    readonly_fields = ["id", "created_at", "updated_at"]

    # Deleting here goes through the service, so clusters using the server as their bastion go
    # back to `pre_pending` exactly as with DELETE /servers/{id}.
    def delete_model(self, request: HttpRequest, obj: Server) -> None:
        services.server_delete(server=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for server in queryset:
            services.server_delete(server=server)


@admin.register(Credential)
class CredentialAdmin(_OrgFixedAdmin):
    list_display = ["name", "organization", "provider", "kind", "scope_kind", "updated_at"]
    list_filter = ["provider", "kind", "scope_kind"]
    search_fields = ["name", "account_id"]
    list_select_related = ["organization"]
    exclude = ["secret"]
    # Provider, kind and scope are validated against the registry (and the scope fingerprinted)
    # only by the API's services, so the console shows them but does not edit them.
    readonly_fields = [
        "id",
        "provider",
        "kind",
        "schema_version",
        "scope_kind",
        "scope_version",
        "scope",
        "scope_fingerprint",
        "created_at",
        "updated_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A credential needs a registry-validated secret, which only the API accepts.
        return False


@admin.register(LoadBalancer)
class LoadBalancerAdmin(_OrgFixedAdmin):
    list_display = ["name", "organization", "kind", "public_ip_address", "private_ip_address"]
    list_filter = ["kind"]
    search_fields = ["name"]
    list_select_related = ["organization"]
    readonly_fields = ["id", "created_at", "updated_at"]

    # Through the service, so clusters using it go back to `pre_pending` as with the API.
    def delete_model(self, request: HttpRequest, obj: LoadBalancer) -> None:
        services.load_balancer_delete(load_balancer=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for load_balancer in queryset:
            services.load_balancer_delete(load_balancer=load_balancer)

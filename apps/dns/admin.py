from django.contrib import admin

from apps.dns.models import Domain, RecordSet


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ("domain_name", "organization", "zone_id", "status", "created_at")
    list_filter = ("status",)
    search_fields = ("domain_name", "zone_id")
    raw_id_fields = ("organization", "credential")


@admin.register(RecordSet)
class RecordSetAdmin(admin.ModelAdmin):
    list_display = ("name", "type", "domain", "owner", "status", "created_at")
    list_filter = ("type", "status", "owner")
    search_fields = ("name", "domain__domain_name")
    raw_id_fields = ("organization", "domain")

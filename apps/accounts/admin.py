from django.contrib import admin

from apps.accounts.models import User


@admin.register(User)
class UserAdmin(admin.ModelAdmin):
    list_display = ["primary_email", "display_name", "is_admin", "is_disabled", "created_at"]
    list_filter = ["is_admin", "is_disabled"]
    search_fields = ["primary_email", "display_name"]
    # The password hash is never shown or edited here.
    exclude = ["password"]
    readonly_fields = ["id", "last_login", "created_at", "updated_at"]

from django.contrib import admin

from apps.accounts import services
from apps.accounts.models import APIKey, OAuthIdentity, RefreshToken, SigningKey, User, UserEmail


@admin.register(User)
class UserAdmin(admin.ModelAdmin):
    list_display = ["primary_email", "display_name", "is_admin", "is_disabled", "created_at"]
    list_filter = ["is_admin", "is_disabled"]
    search_fields = ["primary_email", "display_name"]
    # The password hash is never shown or edited here.
    exclude = ["password"]
    readonly_fields = ["id", "last_login", "created_at", "updated_at"]


@admin.register(UserEmail)
class UserEmailAdmin(admin.ModelAdmin):
    list_display = ["email", "user", "is_primary", "is_verified", "created_at"]
    search_fields = ["email", "user__primary_email"]
    raw_id_fields = ["user"]


@admin.register(OAuthIdentity)
class OAuthIdentityAdmin(admin.ModelAdmin):
    list_display = ["provider", "subject", "user", "email", "email_verified", "created_at"]
    search_fields = ["subject", "email", "user__primary_email"]
    raw_id_fields = ["user"]


@admin.register(APIKey)
class APIKeyAdmin(admin.ModelAdmin):
    """Keys are shown by their public prefix only; the hash is never displayed."""

    list_display = [
        "name",
        "scope",
        "public_id",
        "user",
        "organization",
        "expires_at",
        "revoked_at",
        "last_used_at",
    ]
    list_filter = ["scope", "purpose", "is_ephemeral"]
    search_fields = ["name", "public_id", "user__primary_email", "organization__name"]
    exclude = ["secret_hash"]
    readonly_fields = [
        "id",
        "public_id",
        "scope",
        "user",
        "organization",
        "last_used_at",
        "created_at",
        "updated_at",
    ]

    # Authentication caches verified keys; any change here (revoking, expiry, deletion) must
    # reach the next request, so the cached entries are dropped.
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        services.api_key_cache_clear(public_id=obj.public_id)

    def delete_model(self, request, obj):
        public_id = obj.public_id
        super().delete_model(request, obj)
        services.api_key_cache_clear(public_id=public_id)

    def delete_queryset(self, request, queryset):
        public_ids = list(queryset.values_list("public_id", flat=True))
        super().delete_queryset(request, queryset)
        for public_id in public_ids:
            services.api_key_cache_clear(public_id=public_id)


@admin.register(RefreshToken)
class RefreshTokenAdmin(admin.ModelAdmin):
    list_display = ["id", "user", "family_id", "expires_at", "used_at", "revoked_at"]
    exclude = ["digest"]
    readonly_fields = [
        "id",
        "user",
        "family_id",
        "expires_at",
        "family_expires_at",
        "used_at",
        "created_at",
    ]


@admin.register(SigningKey)
class SigningKeyAdmin(admin.ModelAdmin):
    """Private parts are never shown; deactivate or set `expires_at` to retire a key."""

    list_display = ["kid", "alg", "is_active", "expires_at", "created_at"]
    exclude = ["private_pem"]
    readonly_fields = ["id", "kid", "alg", "public_pem", "created_at", "updated_at"]

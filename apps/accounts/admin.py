"""Console pages of people, keys and tokens: the one Accounts section.

Rows only a service may create (API keys, refresh tokens, signing keys) have no Add form:
actions do that job (mint an org key and show its secret once, generate a signing key, revoke,
retire), each writing a LogEntry. Hashes, digests and private keys are never shown."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from apps.accounts import services, tokens
from apps.accounts.models import APIKey, OAuthIdentity, RefreshToken, SigningKey, User, UserEmail
from apps.accounts.serializers import CreateKeySerializer, UpdateMeSerializer
from apps.clusters.models import Cluster
from apps.core.api.errors import APIError
from apps.core.permissions import Perm
from apps.orgs.console_base import (
    ORG_FILTER,
    APIRules,
    APIRulesFormMixin,
    OrgScopedAdmin,
    adopt,
    can,
    confirm_page,
    confirmed,
    is_platform_admin,
    orgs_allowing,
    refusal_text,
)
from apps.orgs.models import Organization

# allauth's own rows (its e-mail addresses, social accounts and their OAuth tokens, provider
# apps configured in settings) and Django's groups (our users have none) are plumbing: people
# are managed through the models below, and OAuth tokens are secrets that never render.
for _model_path in (
    "account.EmailAddress",
    "account.EmailConfirmation",
    "socialaccount.SocialApp",
    "socialaccount.SocialToken",
    "socialaccount.SocialAccount",
):
    from django.apps import apps as _apps

    _model = _apps.get_model(_model_path)
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
if admin.site.is_registered(Group):
    admin.site.unregister(Group)


# --- People ----------------------------------------------------------------------------------


@admin.register(User)
class UserAdmin(OrgScopedAdmin):
    """Platform admins manage accounts. Owners and admins of an organization may look up the
    people of their organizations (to pick them in a membership), nothing more."""

    org_field = None
    list_display = ["primary_email", "display_name", "is_admin", "is_disabled", "created_at"]
    list_filter = ["is_admin", "is_disabled"]
    search_fields = ["primary_email", "display_name"]
    fields = [
        "primary_email",
        "display_name",
        "avatar_url",
        "is_admin",
        "is_disabled",
        "last_login",
        "created_at",
        "updated_at",
    ]
    readonly_fields = ["last_login", "created_at", "updated_at"]
    # The API lets a person change only their own display name; the rest is platform-admin
    # business with no API route, checked by the model's fields.
    api_rules = APIRules(
        create=UpdateMeSerializer,
        console_only={
            "primary_email": "no API route sets it; an EmailField, unique",
            "avatar_url": "no API route sets it (sign-in copies it); a URLField",
            "is_admin": "no API route sets it; a boolean",
            "is_disabled": "no API route sets it; a boolean",
        },
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        qs = admin.ModelAdmin.get_queryset(self, request)
        if is_platform_admin(request):
            return qs
        orgs = orgs_allowing(request, Perm.READ_MEMBERS)
        return qs.filter(memberships__organization_id__in=orgs).distinct()

    def _allowed(self, request: HttpRequest, perm: Perm, obj: Any) -> bool:
        if is_platform_admin(request):
            return True
        if perm != Perm.READ:
            return False
        if obj is None:
            return bool(orgs_allowing(request, Perm.READ_MEMBERS))
        return self.get_queryset(request).filter(pk=obj.pk).exists()

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_platform_admin(request)

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            # Fields that grant or withdraw rights: processes must not keep the old user.
            if {"is_disabled", "is_admin"} & set(form.changed_data):
                services.user_access_changed(user=obj)
            return
        # Through the manager: the address normalised, and no usable password (people sign in
        # with Google; a break-glass password is set with `manage.py create_admin`).
        data = form.cleaned_data
        created = User.objects.create_user(
            data["primary_email"],
            **{n: data[n] for n in ("display_name", "avatar_url", "is_admin", "is_disabled")},
        )
        adopt(obj, created)


class _PlatformAdmin(OrgScopedAdmin):
    org_field = None
    platform_only = True


@admin.register(UserEmail)
class UserEmailAdmin(_PlatformAdmin):
    list_display = ["email", "user", "is_primary", "is_verified", "created_at"]
    list_filter = ["is_primary", "is_verified"]
    search_fields = ["email", "user__primary_email"]
    list_select_related = ["user"]
    autocomplete_fields = ["user"]
    readonly_fields = ["created_at", "updated_at"]
    # The API only reads these rows (sign-in writes them).
    api_rules = APIRules(
        create=UpdateMeSerializer,
        console_only={
            "email": "no API route writes it; an EmailField, unique",
            "is_primary": "no API route writes it; a boolean",
            "is_verified": "no API route writes it; a boolean",
        },
    )


@admin.register(OAuthIdentity)
class OAuthIdentityAdmin(_PlatformAdmin):
    """Links made by sign-in; an admin may look at them or delete one (unlinking), not forge
    one."""

    list_display = ["provider", "subject", "user", "email", "email_verified", "created_at"]
    list_filter = ["provider", "email_verified"]
    search_fields = ["subject", "email", "user__primary_email"]
    list_select_related = ["user"]
    readonly_fields = [
        "user",
        "provider",
        "subject",
        "email",
        "email_verified",
        "created_at",
        "updated_at",
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


# --- API keys --------------------------------------------------------------------------------


class MintOrgKeyForm(APIRulesFormMixin, forms.Form):
    console_api_rules = APIRules(create=CreateKeySerializer)

    organization = forms.ModelChoiceField(queryset=Organization.objects.none())
    name = forms.CharField(max_length=255, required=False)
    expires_in_hours = forms.IntegerField(
        required=False, min_value=1, max_value=24 * 365 * 10, help_text="Empty: never expires."
    )
    # Scopes (docs/identity.md, "Scoped keys"), fixed at creation like the expiry.
    read_only = forms.BooleanField(required=False, help_text="The key may only read.")
    networks = forms.CharField(
        required=False,
        label="Allowed client networks",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="CIDRs, one per line or comma-separated. Empty: any address.",
    )
    clusters = forms.ModelMultipleChoiceField(
        queryset=Cluster.objects.none(),
        required=False,
        help_text="Clusters of the chosen organization the key may touch (and nothing else). "
        "None chosen: not limited to clusters.",
    )

    def __init__(self, *args: Any, request: HttpRequest, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        orgs = Organization.objects.order_by("name")
        if not is_platform_admin(request):
            orgs = orgs.filter(pk__in=orgs_allowing(request, Perm.MANAGE_KEYS))
        # The form's own copy of the ModelChoiceField declared above.
        cast(forms.ModelChoiceField, self.fields["organization"]).queryset = orgs
        # Clusters of those organizations only; the service checks the chosen one's.
        cast(
            forms.ModelMultipleChoiceField, self.fields["clusters"]
        ).queryset = Cluster.objects.filter(organization__in=orgs).order_by("name")

    def scope_request(self) -> services.KeyScopeRequest:
        data = self.cleaned_data
        networks = [n.strip() for n in data["networks"].replace(",", "\n").splitlines()]
        return services.KeyScopeRequest(
            read_only=bool(data["read_only"]),
            allowed_cidrs=tuple(n for n in networks if n),
            cluster_ids=tuple(c.pk for c in data["clusters"]),
        )

    def clean(self) -> dict[str, Any]:
        super().clean()
        self.check_api_rules(self.cleaned_data)
        return self.cleaned_data


@admin.register(APIKey)
class APIKeyAdmin(OrgScopedAdmin):
    """Shown by their public prefix only; the hash is never displayed. Org keys are minted here
    (the secret is shown once); user keys are made by their owners through the API."""

    view_perm = Perm.READ_KEYS
    change_perm = add_perm = delete_perm = Perm.MANAGE_KEYS
    list_display = [
        "name",
        "scope",
        "public_id",
        "user",
        "organization",
        "limits",
        "expires_at",
        "revoked_at",
        "last_used_at",
    ]
    list_filter = ["scope", "purpose", "is_ephemeral", "read_only", ORG_FILTER]
    search_fields = ["name", "public_id", "user__primary_email", "organization__name"]
    list_select_related = ["user", "organization"]
    search_help_text = (
        "Name, owner's e-mail, organization, or a key as pasted: u_<id>_<secret>, u_<id>, "
        "org_<id>, or the bare id (the secret part is never kept or shown)."
    )
    fields = [
        "name",
        "scope",
        "purpose",
        "public_id",
        "user",
        "organization",
        "cluster_id",
        "is_ephemeral",
        "read_only",
        "allowed_cidrs",
        "allowed_cluster_ids",
        "expires_at",
        "revoked_at",
        "last_used_at",
        "created_at",
        "updated_at",
    ]
    # Expiry and revocation change only through the services (mint, the revoke action): typed
    # here, a revoked key could be brought back or an ephemeral key made permanent.
    readonly_fields = [
        "scope",
        "purpose",
        "public_id",
        "user",
        "organization",
        "cluster_id",
        "is_ephemeral",
        # Scopes are fixed at creation: a key's powers never grow.
        "read_only",
        "allowed_cidrs",
        "allowed_cluster_ids",
        "expires_at",
        "revoked_at",
        "last_used_at",
        "created_at",
        "updated_at",
    ]
    actions = ["revoke_keys"]
    api_rules = APIRules(create=CreateKeySerializer)

    def obj_org_id(self, obj: Any) -> Any:
        return obj.organization_id

    @admin.display(description="Limits")
    def limits(self, obj: APIKey) -> str:
        """The key's scopes in a few words ("-" for none, as the original's keys)."""
        parts = ["read-only"] if obj.read_only else []
        if obj.allowed_cidrs:
            parts.append("from " + ", ".join(obj.allowed_cidrs))
        if obj.allowed_cluster_ids:
            count = len(obj.allowed_cluster_ids)
            parts.append(f"{count} cluster{'s' if count != 1 else ''}")
        return "; ".join(parts) or "-"

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Keys are minted (below), never typed.
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.organization_id is None:
            return is_platform_admin(request)
        return super().has_change_permission(request, obj)

    has_delete_permission = has_change_permission

    def get_urls(self) -> list:
        mint = path(
            "mint/",
            self.admin_site.admin_view(self.mint_view),
            name="accounts_apikey_mint",
        )
        revoke = path(
            "<uuid:key_id>/revoke/",
            self.admin_site.admin_view(self.revoke_view),
            name="accounts_apikey_revoke",
        )
        return [mint, revoke, *super().get_urls()]

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str):
        # A key pasted whole (`u_<id>_<secret>`, `org_<id>`, ...) is found by its public id.
        public_id = tokens.public_id_from_pasted(search_term)
        if public_id is not None:
            return queryset.filter(public_id=public_id), False
        return super().get_search_results(request, queryset, search_term)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        # A pasted key's secret is redirected away by OrgScopedAdmin.changelist_view.
        extra_context = {
            **(extra_context or {}),
            "can_mint": is_platform_admin(request)
            or bool(orgs_allowing(request, Perm.MANAGE_KEYS)),
        }
        return super().changelist_view(request, extra_context)

    def mint_view(self, request: HttpRequest) -> HttpResponse:
        """Mint an org key/secret pair; the secret is on this one response and nowhere else."""
        if not (is_platform_admin(request) or orgs_allowing(request, Perm.MANAGE_KEYS)):
            raise PermissionDenied
        form = MintOrgKeyForm(request.POST or None, request=request)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Mint an organization key",
            "form": form,
        }
        if request.method == "POST" and form.is_valid():
            try:
                created = services.api_key_create_for_org(
                    organization=form.cleaned_data["organization"],
                    name=form.cleaned_data["name"] or "",
                    expires_in_hours=form.cleaned_data["expires_in_hours"],
                    scope=form.scope_request(),
                )
            except APIError as exc:
                form.add_error(None, refusal_text(exc))
            else:
                self.log_addition(request, created.key, "Minted an org key (secret shown once)")
                context.update(title="Organization key minted", created=created)
                response = TemplateResponse(request, "admin/accounts/apikey/minted.html", context)
                response["Cache-Control"] = "no-store"
                return response
        return TemplateResponse(request, "admin/accounts/apikey/mint.html", context)

    # Authentication caches verified keys; any change here (revoking, expiry, deletion) must
    # reach the next request, so the cached entries are dropped.
    def save_model(self, request: HttpRequest, obj: APIKey, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        services.api_key_cache_clear(public_id=obj.public_id)

    def delete_model(self, request: HttpRequest, obj: APIKey) -> None:
        public_id = obj.public_id
        super().delete_model(request, obj)
        services.api_key_cache_clear(public_id=public_id)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        public_ids = list(queryset.values_list("public_id", flat=True))
        super().delete_queryset(request, queryset)
        for public_id in public_ids:
            services.api_key_cache_clear(public_id=public_id)

    def render_change_form(
        self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any
    ) -> HttpResponse:
        key = kwargs.get("obj")
        context["can_revoke"] = (
            key is not None and key.revoked_at is None and self._may_revoke(request, key)
        )
        return super().render_change_form(request, context, *args, **kwargs)

    def _may_revoke(self, request: HttpRequest, key: APIKey) -> bool:
        if key.organization_id is None:
            return is_platform_admin(request)
        return can(request, Perm.MANAGE_KEYS, key.organization_id)

    def _revoke(self, request: HttpRequest, key: APIKey) -> None:
        services.api_key_revoke(key=key)
        self.log_change(request, key, "Revoked the key")
        self.message_user(request, f"{key}: revoked", messages.SUCCESS)

    def revoke_view(self, request: HttpRequest, key_id: Any) -> HttpResponse:
        """ "Revoke" on a key's page: a confirmation page, then the revocation (one POST)."""
        key = self.get_queryset(request).filter(pk=key_id).first()
        if key is None:
            # Django's own "no such object" message and redirect; private, so not in the stubs.
            return self._get_obj_does_not_exist_redirect(request, self.opts, str(key_id))  # type: ignore[attr-defined]
        if not self._may_revoke(request, key):
            raise PermissionDenied
        if not confirmed(request):
            return confirm_page(
                request,
                self,
                title="Revoke this key?",
                question=_REVOKE_QUESTION,
                objects=[key],
                confirm_label="Yes, revoke it",
            )
        if key.revoked_at is None:
            self._revoke(request, key)
        return HttpResponseRedirect(reverse("admin:accounts_apikey_change", args=[key.pk]))

    @admin.action(description="Revoke the selected keys")
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        if not confirmed(request):
            return confirm_page(
                request,
                self,
                title="Revoke the selected keys?",
                question=_REVOKE_QUESTION,
                objects=list(queryset),
                confirm_label="Yes, revoke them",
                action="revoke_keys",
            )
        for key in queryset:
            if not self._may_revoke(request, key):
                self.message_user(request, f"{key}: your role does not allow this", messages.ERROR)
                continue
            self._revoke(request, key)
        return None


_REVOKE_QUESTION = (
    "Every request made with it is refused from now on, in every process. A revoked key cannot "
    "be brought back: its owner has to make a new one."
)


# --- Refresh tokens and signing keys ---------------------------------------------------------

# Shown, never edited: each is both `fields` and `readonly_fields` (a tuple, which both accept).
_REFRESH_TOKEN_FIELDS = (
    "user",
    "family_id",
    "expires_at",
    "family_expires_at",
    "used_at",
    "revoked_at",
    "created_at",
)
_SIGNING_KEY_FIELDS = (
    "kid",
    "alg",
    "is_active",
    "expires_at",
    "public_pem",
    "created_at",
    "updated_at",
)


@admin.register(RefreshToken)
class RefreshTokenAdmin(_PlatformAdmin):
    """Issued by sign-in only; an admin may revoke a login (its whole token family)."""

    list_display = ["id", "user", "family_id", "expires_at", "used_at", "revoked_at"]
    list_filter = ["revoked_at"]
    search_fields = ["user__primary_email", "family_id"]
    list_select_related = ["user"]
    fields = readonly_fields = _REFRESH_TOKEN_FIELDS
    actions = ["revoke_families"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.action(description="Revoke the selected logins (their whole token families)")
    def revoke_families(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        if not confirmed(request):
            return confirm_page(
                request,
                self,
                title="Revoke the selected logins?",
                question="Their people are signed out of the API and must sign in again.",
                objects=list(queryset),
                confirm_label="Yes, revoke them",
                action="revoke_families",
            )
        for token in queryset:
            count = services.refresh_family_revoke(family_id=token.family_id)
            self.log_change(request, token, f"Revoked its token family ({count} tokens)")
        self.message_user(request, "Selected logins revoked.")
        return None


@admin.register(SigningKey)
class SigningKeyAdmin(_PlatformAdmin):
    """JWT signing keys are generated, never typed: "Generate a new signing key" makes the new
    signer; "Retire" lets a key stop verifying once the tokens it signed have expired. Private
    keys never render."""

    list_display = ["kid", "alg", "is_active", "expires_at", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["kid"]
    fields = readonly_fields = _SIGNING_KEY_FIELDS
    actions = ["retire_keys"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Deleting the signer takes sign-in down for everyone; retire it instead.
        return False

    def get_urls(self) -> list:
        generate = path(
            "generate/",
            self.admin_site.admin_view(self.generate_view),
            name="accounts_signingkey_generate",
        )
        return [generate, *super().get_urls()]

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        extra_context = {**(extra_context or {}), "can_generate": is_platform_admin(request)}
        return super().changelist_view(request, extra_context)

    def generate_view(self, request: HttpRequest) -> HttpResponse:
        """Rotate the signer: a confirmation page, then the new key (one POST)."""
        if not is_platform_admin(request):
            raise PermissionDenied
        changelist = reverse("admin:accounts_signingkey_changelist")
        if not confirmed(request):
            return confirm_page(
                request,
                self,
                title="Generate a new signing key?",
                question=(
                    "The new key signs every token from now on. Tokens signed by the current "
                    "key stay valid until they expire; retire it afterwards."
                ),
                objects=[],
                confirm_label="Yes, generate it",
            )
        key = services.signing_key_generate()
        self.log_addition(request, key, "Generated a new signing key (now the signer)")
        self.message_user(request, f"Signing key {key.kid} generated; it signs from now on.")
        return HttpResponseRedirect(changelist)

    @admin.action(description="Retire the selected keys (stop verifying after a token lifetime)")
    def retire_keys(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        if not confirmed(request):
            return confirm_page(
                request,
                self,
                title="Retire the selected signing keys?",
                question=(
                    "Tokens they signed stop being accepted once a token lifetime has passed; "
                    "people signed in with them will have to sign in again."
                ),
                objects=list(queryset),
                confirm_label="Yes, retire them",
                action="retire_keys",
            )
        for key in queryset:
            services.signing_key_retire(key=key)
            self.log_change(
                request, key, f"Retired: verifies until {key.expires_at:%Y-%m-%d %H:%M}"
            )
        self.message_user(request, f"Retired {queryset.count()} key(s) at {timezone.now():%H:%M}.")
        return None

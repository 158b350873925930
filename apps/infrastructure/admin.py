"""Console pages of the infrastructure app. Secret columns (SSH private keys, credential secrets)
show only as "set" / "not set"; reading one is an explicit, role-checked, logged action. Every
write goes through apps.infrastructure.services, as the API's do."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from apps.console.pages import ObjectPageMixin, PageAction, job_url, server_page
from apps.core.permissions import Perm
from apps.core.tenancy import Tenant
from apps.infrastructure import bootstrap, registry, services
from apps.infrastructure.keygen import RSA_BITS
from apps.infrastructure.models import Credential, LoadBalancer, Server, SSHKey
from apps.infrastructure.serializers import (
    CredentialCreateSerializer,
    CredentialUpdateSerializer,
    LoadBalancerSerializer,
    ServerSerializer,
    SSHKeyCreateSerializer,
)
from apps.orgs.console_base import (
    ORG_FILTER,
    APIRules,
    ConsoleModelForm,
    OrgScopedAdmin,
    adopt,
    can,
    console_roles,
    is_platform_admin,
    secret_state,
)

# What ModelAdmin.get_fields answers: field names, or a group of names shown on one line.
_FieldGroups = list[str | list[str] | tuple[str, ...]]


def _reveal_audit(request: HttpRequest, obj: Any, resource: str) -> None:
    """The API's `secret_revealed` log line, for a reveal made in the console."""
    role = (
        "platform_admin"
        if is_platform_admin(request)
        else console_roles(request).get(obj.organization_id, "")
    )
    services.secret_reveal_log(
        tenant=Tenant(organization=obj.organization, role=role, principal_kind="user"),
        request_user=request.user,
        resource=resource,
        resource_id=obj.pk,
    )


def _single(admin_obj: OrgScopedAdmin, request: HttpRequest, queryset: QuerySet) -> Any:
    if queryset.count() != 1:
        admin_obj.message_user(request, "Select exactly one row for this action.", messages.ERROR)
        return None
    return queryset.first()


# --- SSH keys --------------------------------------------------------------------------------


class SSHKeyCreateForm(ConsoleModelForm):
    """What the API's POST /ssh takes; the key pair itself is generated server-side."""

    bits = forms.TypedChoiceField(
        choices=[("", "default (4096 for RSA)")] + [(b, str(b)) for b in RSA_BITS],
        coerce=int,
        empty_value=None,
        required=False,
        help_text="RSA only.",
    )

    class Meta:
        model = SSHKey
        fields = ["organization", "name", "key_type", "bits", "comment"]


@admin.register(SSHKey)
class SSHKeyAdmin(OrgScopedAdmin):
    list_display = ["name", "organization", "key_type", "bits", "fingerprint", "created_at"]
    list_filter = ["key_type", ORG_FILTER]
    search_fields = ["name", "fingerprint", "comment"]
    list_select_related = ["organization"]
    immutable_fields = ("key_type", "bits", "public_key", "fingerprint")
    # The comment ends up on the one-line public key: the API's control-character rule.
    api_rules = APIRules(create=SSHKeyCreateSerializer, wire_names={"key_type": "type"})
    actions = ["download_private_key"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        if obj is None:
            kwargs["form"] = SSHKeyCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> _FieldGroups:
        if obj is None:
            return ["organization", "name", "key_type", "bits", "comment"]
        return [
            "organization",
            "name",
            "comment",
            "key_type",
            "bits",
            "fingerprint",
            "public_key",
            "private_key_state",
            "created_at",
            "updated_at",
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is None:
            return []
        fields = super().get_readonly_fields(request, obj)
        return [*fields, "private_key_state", "created_at", "updated_at"]

    @admin.display(description="private key")
    def private_key_state(self, obj: SSHKey) -> str:
        return secret_state(obj.private_key)

    def save_model(self, request: HttpRequest, obj: SSHKey, form: Any, change: bool) -> None:
        if change:
            obj.save(update_fields=["name", "comment", "updated_at"])
            return
        created = services.ssh_key_create(
            organization=obj.organization,
            name=obj.name,
            key_type=obj.key_type,
            bits=form.cleaned_data.get("bits"),
            comment=obj.comment or "",
        )
        adopt(obj, created)

    def delete_model(self, request: HttpRequest, obj: SSHKey) -> None:
        services.ssh_key_delete(ssh_key=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for key in queryset:
            services.ssh_key_delete(ssh_key=key)

    @admin.action(description="Download the private key (logged)")
    def download_private_key(self, request: HttpRequest, queryset: QuerySet) -> Any:
        key = _single(self, request, queryset)
        if key is None:
            return None
        self.require(request, Perm.REVEAL_SECRETS, key)
        _reveal_audit(request, key, "ssh_key")
        self.log_reveal(request, key, "the private key (download)")
        response = HttpResponse(key.private_key, content_type="application/x-pem-file")
        response["Content-Disposition"] = f'attachment; filename="{key.name or key.pk}.pem"'
        response["Cache-Control"] = "no-store"
        return response


# --- Servers ---------------------------------------------------------------------------------


# What the console writes; `status` is shown only: bootstraps and jobs move it.
SERVER_FIELDS = [
    "hostname",
    "public_ip_address",
    "private_ip_address",
    "ssh_user",
    "ssh_port",
    "ssh_key",
    "role",
]


def _needs_confirmation(server: Server) -> bool:
    """A bastion that is neither failed nor pending is re-bootstrapped only after a confirmation
    page: the button is then an option, not the page's next step."""
    return server.status not in (Server.Status.FAILED, Server.Status.PENDING)


@admin.register(Server)
class ServerAdmin(ObjectPageMixin, OrgScopedAdmin):
    list_display = [
        "hostname",
        "organization",
        "role",
        "status",
        "public_ip_address",
        "private_ip_address",
        "last_error",
        "created_at",
    ]
    list_filter = ["role", "status", ORG_FILTER]
    search_fields = ["hostname", "public_ip_address", "private_ip_address"]
    list_select_related = ["organization"]
    autocomplete_fields = ["ssh_key"]
    fields = [
        "organization",
        *SERVER_FIELDS,
        "status",
        "last_error",
        "host_key_state",
        "ssh_host_key_algo",
        "created_at",
        "updated_at",
    ]
    readonly_fields = [
        "status",
        "last_error",
        "host_key_state",
        "ssh_host_key_algo",
        "created_at",
        "updated_at",
    ]
    # The fields asking for a server decide which servers fit: a cluster's bastion must be a
    # bastion, a node pool's member must not be one (the services refuse the rest).
    autocomplete_filters = {
        ("cluster", "bastion_server"): Q(role=Server.Role.BASTION),
        ("nodepoolserver", "server"): ~Q(role=Server.Role.BASTION),
    }
    # Everything but the key reaches SSH: the API's validators.
    api_rules = APIRules(create=ServerSerializer)
    actions = ["bootstrap_now", "reset_host_key"]

    @admin.display(description="pinned SSH host key")
    def host_key_state(self, obj: Server) -> str:
        return "pinned" if obj.ssh_host_key else "not pinned (learned on next connection)"

    def save_model(self, request: HttpRequest, obj: Server, form: Any, change: bool) -> None:
        if change:
            changes = {
                name: form.cleaned_data[name] for name in form.changed_data if name in SERVER_FIELDS
            }
            services.server_update(server=obj, **changes)
            return
        values = {name: getattr(obj, name) for name in SERVER_FIELDS}
        adopt(obj, services.server_create(organization=obj.organization, **values))

    # Deleting goes through the service, so clusters using the server as their bastion go back
    # to `pre_pending` exactly as with DELETE /servers/{id}.
    def delete_model(self, request: HttpRequest, obj: Server) -> None:
        services.server_delete(server=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for server in queryset:
            services.server_delete(server=server)

    @admin.action(description="Bootstrap the selected bastions now")
    def bootstrap_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        for server in self.each_allowed(request, queryset, Perm.WRITE):
            self._bootstrap(request, server)

    def _bootstrap(self, request: HttpRequest, server: Server) -> None:
        """Queue a bastion bootstrap through the bootstrap service, which also moves the server
        to `provisioning` and clears the error of the last attempt."""
        if server.role != Server.Role.BASTION:
            self.message_user(request, f"{server}: not a bastion", messages.ERROR)
            return
        job = bootstrap.bastion_bootstrap_start(server=server)
        if job is None:
            self.message_user(request, f"{server}: a bootstrap is already running")
            return
        self.log_change(request, server, f"Started a bastion bootstrap (job {job.pk})")
        self.message_user(
            request,
            format_html(
                '{}: bootstrap queued (job {}). <a href="{}" id="follow-bootstrap">Follow its '
                "log</a>",
                server,
                job.pk,
                job_url(job.pk),
            ),
        )

    # The server's page: its bootstrap runs, the pools and clusters it belongs to, and
    # "Bootstrap again" for a bastion (the list action's service and role check).

    change_form_template = "admin/infrastructure/server/change_form.html"

    def object_page(self, request: HttpRequest, obj: Server) -> dict[str, Any]:
        return server_page(obj)

    def page_actions(self, request: HttpRequest, obj: Server) -> list[PageAction]:
        if obj.role != Server.Role.BASTION or not can(request, Perm.WRITE, obj.organization_id):
            return []
        if _needs_confirmation(obj):
            # A working bastion: re-running it is possible, not the page's suggestion.
            url = reverse("admin:infrastructure_server_bootstrap_confirm", args=[obj.pk])
            return [PageAction("Re-bootstrap", url, "bootstrap-again", post=False)]
        url = reverse("admin:infrastructure_server_bootstrap", args=[obj.pk])
        label = "Bootstrap again" if obj.status == Server.Status.FAILED else "Bootstrap now"
        return [PageAction(label, url, "bootstrap-again", default=True)]

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<uuid:object_id>/bootstrap/",
                self.admin_site.admin_view(require_POST(self.bootstrap_view)),
                name="infrastructure_server_bootstrap",
            ),
            path(
                "<uuid:object_id>/bootstrap/confirm/",
                self.admin_site.admin_view(self.bootstrap_confirm_view),
                name="infrastructure_server_bootstrap_confirm",
            ),
            *super().get_urls(),
        ]

    def bootstrap_view(self, request: HttpRequest, object_id: Any) -> HttpResponse:
        # Another organization's server is "not found", as everywhere in the console.
        server = get_object_or_404(self.get_queryset(request), pk=object_id)
        self.require(request, Perm.WRITE, server)
        if _needs_confirmation(server) and request.POST.get("confirmed") != "yes":
            return HttpResponseRedirect(
                reverse("admin:infrastructure_server_bootstrap_confirm", args=[server.pk])
            )
        self._bootstrap(request, server)
        return HttpResponseRedirect(reverse("admin:infrastructure_server_change", args=[server.pk]))

    def bootstrap_confirm_view(self, request: HttpRequest, object_id: Any) -> HttpResponse:
        """The page that asks before re-bootstrapping a bastion that is not failed or pending;
        its button POSTs to the bootstrap view with the confirmation."""
        server = get_object_or_404(self.get_queryset(request), pk=object_id)
        self.require(request, Perm.WRITE, server)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Re-bootstrap {server}?",
            "server": server,
            "opts": self.opts,
        }
        return TemplateResponse(
            request, "admin/infrastructure/server/bootstrap_confirm.html", context
        )

    @admin.action(description="Reset the pinned SSH host key")
    def reset_host_key(self, request: HttpRequest, queryset: QuerySet) -> None:
        for server in self.each_allowed(request, queryset, Perm.WRITE):
            services.server_reset_host_key(server=server)
            self.log_change(request, server, "Reset the pinned SSH host key")
            self.message_user(request, f"{server}: host key will be learned on next connection")


# --- Credentials -----------------------------------------------------------------------------


# Labels of the registry's secret kinds and scope kinds, for the console's choices.
KIND_LABELS = {
    "aws_access_key": "AWS access key",
    "api_token": "API token",
    "basic_auth": "User name and password",
    "oauth2": "OAuth 2 client",
}
SCOPE_KIND_LABELS = {
    "provider": "The whole provider",
    "service": "One AWS service",
    "resource": "One AWS resource (ARN)",
}
# Secret parts that are not secret themselves (shown as typed).
_PLAIN_SECRET_PARTS = {"access_key_id", "region", "username", "client_id"}


def _labelled(attribute: str, labels: dict[str, str]) -> list[tuple[str, str]]:
    """Every secret kind (`kinds`) or scope kind (`scopes`) of the registry, labelled, with the
    providers that take it."""
    providers: dict[str, list[str]] = {}
    for provider, spec in registry.PROVIDERS.items():
        for kind in getattr(spec, attribute):
            providers.setdefault(kind, []).append(provider)
    return [
        (kind, f"{labels.get(kind, kind)} ({', '.join(names)})")
        for kind, names in providers.items()
    ]


def _kind_choices() -> list[tuple[str, str]]:
    return _labelled("kinds", KIND_LABELS)


def _scope_kind_choices() -> list[tuple[str, str]]:
    return _labelled("scopes", SCOPE_KIND_LABELS)


def _parts(schemas: dict[str, dict[int, registry.ObjectSchema]]) -> dict[str, list[Any]]:
    """kind -> the fields of its latest schema version."""
    return {kind: list(versions[max(versions)].fields) for kind, versions in schemas.items()}


def _secret_parts() -> dict[str, list[registry.FieldSpec]]:
    found: dict[str, list[registry.FieldSpec]] = {}
    for spec in registry.PROVIDERS.values():
        found.update(_parts(spec.kinds))
    return found


def _scope_parts() -> dict[str, list[registry.FieldSpec]]:
    found: dict[str, list[registry.FieldSpec]] = {}
    for spec in registry.PROVIDERS.values():
        found.update(_parts({k: v.versions for k, v in spec.scopes.items()}))
    return found


SECRET_PARTS = _secret_parts()
SCOPE_PARTS = _scope_parts()


def _part_field(group: str, spec: registry.FieldSpec, *, secret: bool) -> forms.Field:
    help_text = "required" if spec.required else "optional"
    if group == "scope" and spec.name == "service":
        return forms.ChoiceField(
            choices=[("", "---------")] + [(s, s) for s in registry.AWS_SERVICES],
            required=False,
            label="service",
        )
    if spec.name == "access_key_id":
        help_text += "; exactly 20 letters or digits"
    elif spec.name == "arn":
        help_text += "; an ARN (arn:...), 11 to 2047 characters"
    # The browser must neither fill in the operator's own saved login (a username next to a
    # password field looks like a sign-in form) nor offer to save a cloud secret as one.
    widget: forms.Widget = (
        forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
        if secret and spec.name not in _PLAIN_SECRET_PARTS
        else forms.TextInput(attrs={"autocomplete": "off"} if secret else None)
    )
    return forms.CharField(
        required=False, strip=False, widget=widget, label=spec.name, help_text=help_text
    )


def _part_name(group: str, name: str) -> str:
    return f"{group}__{name}"


class CredentialCreateForm(ConsoleModelForm):
    """What the API's POST /credentials takes, as fields: the secret kind and scope kind are
    choices, and the secret and scope are typed part by part (only the chosen kinds' parts are
    used). The form assembles the same `secret` and `scope` objects the API takes, and the
    registry checks them in `credential_create`. Secret parts are never rendered back."""

    provider = forms.ChoiceField(choices=[(p, p) for p in registry.PROVIDERS])
    kind = forms.ChoiceField(choices=_kind_choices, label="Secret kind")
    scope_kind = forms.ChoiceField(choices=_scope_kind_choices, label="Scope kind")

    class Meta:
        model = Credential
        fields = [
            "organization",
            "name",
            "provider",
            "kind",
            "schema_version",
            "scope_kind",
            "scope_version",
            "account_id",
            "region",
        ]

    def _assemble(self, group: str, kind: str, parts: dict[str, list[Any]]) -> dict[str, Any]:
        """The object the API would get for `kind`: the chosen kind's parts that were filled
        in. A part typed for another kind is refused rather than silently dropped."""
        chosen = {spec.name for spec in parts.get(kind, [])}
        value: dict[str, Any] = {}
        for other_kind, specs in parts.items():
            for spec in specs:
                typed = self.cleaned_data.get(_part_name(group, spec.name)) or ""
                if not typed:
                    continue
                if spec.name in chosen:
                    value[spec.name] = typed
                elif other_kind != kind:
                    self.add_error(_part_name(group, spec.name), f"is not part of a {kind} {group}")
        return value

    def clean(self) -> dict[str, Any]:
        kind = self.cleaned_data.get("kind") or ""
        scope_kind = self.cleaned_data.get("scope_kind") or ""
        self.cleaned_data["secret"] = self._assemble("secret", kind, SECRET_PARTS)
        self.cleaned_data["scope"] = self._assemble("scope", scope_kind, SCOPE_PARTS)
        return super().clean()

    def add_error(self, field: str | None, error: Any) -> None:
        # The registry names a part as `secret.token` / `scope.service`; the service's refusal
        # arrives as ("secret", "token: ...") or (None, "secret: token: ...") and lands on
        # that part's own field.
        if isinstance(error, str):
            group, rest = field, error
            if field is None:
                group, _, rest = error.partition(": ")
            if group in ("secret", "scope"):
                part, _, message = rest.partition(": ")
                name = _part_name(group, part)
                if message and name in self.fields:
                    super().add_error(name, message)
                    return
                if field is not None:
                    super().add_error(None, f"{field}: {error}")
                    return
        super().add_error(field, error)

    class Media:
        js = ["console/credential_form.js"]

    def _post_clean(self) -> None:
        # The registry validates the whole credential when it is created (credential_create);
        # the model's own checks (a required, encrypted secret column) do not apply to the form.
        pass


# The parts are declared on the form class (the admin builds its form from the declared
# fields), one per name the registry's kinds use.
for _group, _kinds, _secret in (("secret", SECRET_PARTS, True), ("scope", SCOPE_PARTS, False)):
    for _specs in _kinds.values():
        for _spec in _specs:
            _name = _part_name(_group, _spec.name)
            _field = _part_field(_group, _spec, secret=_secret)
            CredentialCreateForm.declared_fields[_name] = _field
            CredentialCreateForm.base_fields[_name] = _field


def _credential_add_fieldsets() -> list[tuple[str | None, dict[str, Any]]]:
    """The add page: the credential, then one group of parts per scope kind and secret kind
    (static/console/credential_form.js shows only the chosen kinds' groups)."""
    fieldsets: list[tuple[str | None, dict[str, Any]]] = [
        (None, {"fields": CredentialCreateForm.Meta.fields})
    ]
    for group, parts, labels in (
        ("scope", SCOPE_PARTS, SCOPE_KIND_LABELS),
        ("secret", SECRET_PARTS, KIND_LABELS),
    ):
        for kind, specs in parts.items():
            if not specs:
                continue
            fieldsets.append(
                (
                    f"{group.capitalize()}: {labels.get(kind, kind)}",
                    {
                        "fields": [_part_name(group, spec.name) for spec in specs],
                        "classes": ["ag-kind-parts", f"ag-{group}-{kind}"],
                        "description": f"Used when the {group} kind is {kind}.",
                    },
                )
            )
    return fieldsets


@admin.register(Credential)
class CredentialAdmin(OrgScopedAdmin):
    list_display = ["name", "organization", "provider", "kind", "scope_kind", "updated_at"]
    list_filter = ["provider", "kind", "scope_kind", ORG_FILTER]
    search_fields = ["name", "account_id"]
    list_select_related = ["organization"]
    fields = [
        "organization",
        "name",
        "account_id",
        "region",
        "provider",
        "kind",
        "schema_version",
        "scope_kind",
        "scope_version",
        "scope",
        "scope_fingerprint",
        "secret_state",
        "created_at",
        "updated_at",
    ]
    # Provider, kind and scope are validated against the registry (and the scope fingerprinted)
    # by the services; the console shows them, and edits only the plain fields.
    readonly_fields = [
        "provider",
        "kind",
        "schema_version",
        "scope_kind",
        "scope_version",
        "scope",
        "scope_fingerprint",
        "secret_state",
        "created_at",
        "updated_at",
    ]
    actions = ["download_secret"]
    # The registry checks provider, kind, scope and secret when the service saves.
    api_rules = APIRules(
        create=CredentialCreateSerializer,
        update=CredentialUpdateSerializer,
        wire_names={"provider": "credential_provider"},
        console_only={
            **{
                _part_name("secret", spec.name): "a part of `secret`, checked by the registry"
                for specs in SECRET_PARTS.values()
                for spec in specs
            },
            **{
                _part_name("scope", spec.name): "a part of `scope`, checked by the registry"
                for specs in SCOPE_PARTS.values()
                for spec in specs
            },
        },
    )

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        if obj is None:
            kwargs["form"] = CredentialCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> _FieldGroups:
        if obj is None:
            return [name for _, group in _credential_add_fieldsets() for name in group["fields"]]
        return list(self.fields)

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return _credential_add_fieldsets()
        return super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return super().get_readonly_fields(request, obj) if obj is not None else []

    @admin.display(description="secret")
    def secret_state(self, obj: Credential) -> str:
        return secret_state(obj.secret)

    def save_model(self, request: HttpRequest, obj: Credential, form: Any, change: bool) -> None:
        if not change:
            data = form.cleaned_data
            created = services.credential_create(
                organization=data["organization"],
                **{n: data[n] for n in CredentialCreateForm.Meta.fields if n != "organization"},
                scope=data["scope"],
                secret=data["secret"],
            )
            adopt(obj, created)
            return
        changes = {
            name: form.cleaned_data[name]
            for name in form.changed_data
            if name in ("name", "account_id", "region")
        }
        services.credential_update(credential=obj, **changes)

    def delete_model(self, request: HttpRequest, obj: Credential) -> None:
        services.credential_delete(credential=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for credential in queryset:
            services.credential_delete(credential=credential)

    @admin.action(description="Download the secret as JSON (logged)")
    def download_secret(self, request: HttpRequest, queryset: QuerySet) -> Any:
        credential = _single(self, request, queryset)
        if credential is None:
            return None
        self.require(request, Perm.REVEAL_SECRETS, credential)
        secret = services.credential_reveal(credential=credential)
        _reveal_audit(request, credential, "credential")
        self.log_reveal(request, credential, "the secret (download)")
        response = HttpResponse(json.dumps(secret, indent=2), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="credential-{credential.pk}.json"'
        response["Cache-Control"] = "no-store"
        return response


# --- Load balancers --------------------------------------------------------------------------


@admin.register(LoadBalancer)
class LoadBalancerAdmin(OrgScopedAdmin):
    list_display = ["name", "organization", "kind", "public_ip_address", "private_ip_address"]
    list_filter = ["kind", ORG_FILTER]
    search_fields = ["name", "public_ip_address", "private_ip_address"]
    list_select_related = ["organization"]
    readonly_fields = ["created_at", "updated_at"]
    api_rules = APIRules(create=LoadBalancerSerializer)

    # Through the service, so clusters using it go back to `pre_pending` as with the API.
    def delete_model(self, request: HttpRequest, obj: LoadBalancer) -> None:
        services.load_balancer_delete(load_balancer=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for load_balancer in queryset:
            services.load_balancer_delete(load_balancer=load_balancer)

"""Console pages for webhooks, through the same services as the API: endpoints (the secret is
shown once, after a create or a rotation; rotating and deleting ask first), "send a test event",
and the delivery log with its attempts and a redeliver button. Owners and admins only
(`manage_org`), like the API. Platform admins also manage the platform's own endpoints (no
organization: they receive platform events) on the same pages; nobody else sees them or their
deliveries, as the organization filter of every other role never matches a row without one."""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from apps.core.permissions import Perm
from apps.orgs.console_base import (
    ORG_FILTER,
    APIRules,
    ConsoleModelForm,
    OrgScopedAdmin,
    OrgScopedInline,
    adopt,
    is_platform_admin,
    secret_state,
)
from apps.webhooks import services
from apps.webhooks.catalogue import EVENT_TYPES
from apps.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from apps.webhooks.serializers import WebhookEndpointSerializer

_EDITABLE = ("url", "description", "event_types", "enabled", "headers")


class WebhookEndpointForm(ConsoleModelForm):
    event_types = forms.MultipleChoiceField(
        choices=[(kind, kind) for kind in EVENT_TYPES],
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every event.",
    )
    headers = forms.JSONField(
        required=False,
        help_text=(
            'Extra request headers as a JSON object, e.g. {"Authorization": "Bearer …"}. '
            "Stored encrypted and never shown again; leave empty to keep the current ones."
        ),
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["organization", "url", "description", "event_types", "enabled"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial["headers"] = None

    def _post_clean(self) -> None:
        # The services validate and save (the secret column is theirs to fill).
        pass

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not self.instance._state.adding or "organization" in self.errors:
            return data
        organization = data.get("organization")
        if organization is None and not is_platform_admin(self.console_request):
            # Only platform admins own platform endpoints; the field is required for others.
            self.add_error("organization", "This field is required.")
            return data
        try:
            services.webhook_endpoint_limit_check(organization)
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages[0]) from None
        return data


class PlatformOrOrganizationFilter(admin.SimpleListFilter):
    """The platform's own rows or organizations' (only platform admins have the former)."""

    title = "owner"
    parameter_name = "owner"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        if not is_platform_admin(request):
            return []
        return [("platform", "the platform"), ("organizations", "organizations")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "platform":
            return queryset.filter(organization__isnull=True)
        if self.value() == "organizations":
            return queryset.filter(organization__isnull=False)
        return queryset


def _owner(obj: Any) -> str:
    return str(obj.organization) if obj.organization_id else "the platform"


class _OwnersAndAdmins:
    view_perm: ClassVar[Perm] = Perm.MANAGE_ORG
    change_perm: ClassVar[Perm] = Perm.MANAGE_ORG
    add_perm: ClassVar[Perm] = Perm.MANAGE_ORG
    delete_perm: ClassVar[Perm] = Perm.MANAGE_ORG


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(_OwnersAndAdmins, OrgScopedAdmin):
    form = WebhookEndpointForm
    list_display = ["url", "owner", "enabled", "disabled_reason", "updated_at"]
    list_filter = ["enabled", PlatformOrOrganizationFilter, ORG_FILTER]
    search_fields = ["url", "description"]
    list_select_related = ["organization"]
    readonly_fields = [
        "secret_state",
        "header_names",
        "secret_rotation_ends_at",
        "disabled_reason",
        "created_at",
        "updated_at",
    ]
    api_rules = APIRules(create=WebhookEndpointSerializer)
    change_form_template = "admin/webhooks/webhookendpoint/change_form.html"

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = ["organization", *_EDITABLE]
        return fields if obj is None else [*fields, *self.readonly_fields]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        form = super().get_form(request, obj, change=change, **kwargs)
        field = form.base_fields.get("organization")
        if field is not None and obj is None:
            # Required but for platform admins, who may leave it empty for a platform endpoint.
            field.required = not is_platform_admin(request)
        if field is not None and obj is None and not field.required:
            field.help_text = (
                "Empty: an endpoint of the platform itself, which receives platform events "
                "(backups, the platform's audit chain) and no organization's."
            )
        return form

    @admin.display(description="owner", ordering="organization__name")
    def owner(self, obj: WebhookEndpoint) -> str:
        return _owner(obj)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return super().get_readonly_fields(request, obj) if obj is not None else []

    @admin.display(description="signing secret")
    def secret_state(self, obj: WebhookEndpoint) -> str:
        return secret_state(obj.secret)

    @admin.display(description="custom headers")
    def header_names(self, obj: WebhookEndpoint) -> str:
        return ", ".join(sorted(services.webhook_endpoint_headers(obj))) or "none"

    @admin.display(description="previous secret signs until")
    def secret_rotation_ends_at(self, obj: WebhookEndpoint) -> Any:
        return obj.previous_secret_expires_at or "-"

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if not change:
            created, secret = services.webhook_endpoint_create(
                organization=data["organization"],
                url=data["url"],
                description=data.get("description") or "",
                event_types=list(data.get("event_types") or []),
                enabled=bool(data.get("enabled")),
                headers=data.get("headers") or None,
            )
            adopt(obj, created)
            request._webhook_secret = secret  # type: ignore[attr-defined]
            return
        changes = {name: data[name] for name in form.changed_data if name in _EDITABLE}
        if changes.get("headers") is None:
            changes.pop("headers", None)  # empty: keep the current ones
        services.webhook_endpoint_update(endpoint=obj, **changes)

    def delete_model(self, request: HttpRequest, obj: WebhookEndpoint) -> None:
        services.webhook_endpoint_delete(endpoint=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for endpoint in queryset:
            services.webhook_endpoint_delete(endpoint=endpoint)

    def response_add(self, request: HttpRequest, obj: Any, post_url_continue: Any = None):
        secret = getattr(request, "_webhook_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        return self._secret_page(request, obj, secret, "Webhook endpoint created")

    def _secret_page(self, request: HttpRequest, obj: Any, secret: str, title: str):
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": title,
            "original": obj,
            "secret": secret,
        }
        response = TemplateResponse(request, "admin/webhooks/webhookendpoint/secret.html", context)
        response["Cache-Control"] = "no-store"
        return response

    # Actions on one endpoint: rotate (asks first), send a test event.

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view
        return [
            path(
                "<uuid:endpoint_id>/rotate-secret/",
                view(self.rotate_view),
                name="webhooks_webhookendpoint_rotate",
            ),
            path(
                "<uuid:endpoint_id>/send-test/",
                view(require_POST(self.send_test_view)),
                name="webhooks_webhookendpoint_send_test",
            ),
            *super().get_urls(),
        ]

    def _endpoint(self, request: HttpRequest, endpoint_id: uuid.UUID) -> WebhookEndpoint:
        endpoint = self.get_queryset(request).filter(pk=endpoint_id).first()
        if endpoint is None or not self.has_change_permission(request, endpoint):
            raise Http404("webhook endpoint not found")
        return endpoint

    def rotate_view(self, request: HttpRequest, endpoint_id: uuid.UUID) -> HttpResponse:
        """GET: the confirmation page; POST: rotate, then show the new secret once."""
        endpoint = self._endpoint(request, endpoint_id)
        form = RotateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                secret = services.webhook_endpoint_rotate_secret(
                    endpoint=endpoint,
                    overlap_seconds=form.cleaned_data["overlap_hours"] * 3600,
                    force=form.cleaned_data["force"],
                )
            except services.RotationInProgress as exc:
                form.add_error("force", str(exc))
            else:
                self.log_change(request, endpoint, "Rotated the signing secret (shown once)")
                return self._secret_page(request, endpoint, secret, "Signing secret rotated")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Rotate the signing secret?",
            "original": endpoint,
            "form": form,
        }
        return TemplateResponse(request, "admin/webhooks/webhookendpoint/rotate.html", context)

    def send_test_view(self, request: HttpRequest, endpoint_id: uuid.UUID) -> HttpResponse:
        endpoint = self._endpoint(request, endpoint_id)
        try:
            delivery = services.webhook_test_send(endpoint=endpoint)
        except services.TooManyManualSends as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(
                reverse("admin:webhooks_webhookendpoint_change", args=[endpoint.pk])
            )
        self.message_user(request, "A test event is on its way.", messages.SUCCESS)
        return HttpResponseRedirect(
            reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk])
        )


class RotateForm(forms.Form):
    overlap_hours = forms.IntegerField(
        min_value=0,
        max_value=services.ROTATION_OVERLAP_MAX // 3600,
        initial=24,
        help_text="How long the current secret keeps signing beside the new one (0: stop now).",
    )
    force = forms.BooleanField(
        required=False,
        help_text="Rotate even while the previous rotation's overlap runs (its older secret "
        "stops signing at once).",
    )


_ATTEMPT_FIELDS = (
    "number",
    "started_at",
    "duration_ms",
    "outcome",
    "response_status",
    "response",
    "error",
)
# The part of a stored answer (itself at most 1,024 bytes) the attempt log shows.
_RESPONSE_SHOWN = 500
_DELIVERY_FIELDS = (
    "owner",
    "endpoint",
    "event_type",
    "event_id",
    "payload",
    "status",
    "attempts",
    "next_attempt_at",
    "response_status",
    "created_at",
    "finished_at",
)


class WebhookAttemptInline(OrgScopedInline):
    model = WebhookAttempt
    fields = _ATTEMPT_FIELDS
    readonly_fields = _ATTEMPT_FIELDS
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="response body")
    def response(self, attempt: WebhookAttempt) -> str:
        """The receiver's answer, escaped (it is the receiver's text, not ours) and cut short."""
        body = attempt.response_body or ""
        if len(body) > _RESPONSE_SHOWN:
            body = body[:_RESPONSE_SHOWN] + "…"
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', body) if body else "—"


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(_OwnersAndAdmins, OrgScopedAdmin):
    """The delivery log: read-only, with a redeliver button and action."""

    list_display = [
        "event_type",
        "endpoint",
        "owner",
        "status",
        "attempts",
        "response_status",
        "created_at",
    ]
    list_filter = ["status", PlatformOrOrganizationFilter, ORG_FILTER]
    list_select_related = ["event", "endpoint", "organization"]
    fields = _DELIVERY_FIELDS
    readonly_fields = _DELIVERY_FIELDS
    inlines = [WebhookAttemptInline]
    actions = ["redeliver"]
    change_form_template = "admin/webhooks/webhookdelivery/change_form.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="owner", ordering="organization__name")
    def owner(self, obj: WebhookDelivery) -> str:
        return _owner(obj)

    @admin.display(description="event")
    def event_type(self, obj: WebhookDelivery) -> str:
        return obj.event.type

    @admin.display(description="event id")
    def event_id(self, obj: WebhookDelivery) -> str:
        return str(obj.event_id)

    @admin.display(description="payload")
    def payload(self, obj: WebhookDelivery) -> str:
        return services.webhook_payload(obj.event).decode()

    def _redeliver(self, request: HttpRequest, delivery: WebhookDelivery) -> bool:
        try:
            services.webhook_delivery_redeliver(delivery=delivery)
        except services.DeliveryInProgress as exc:
            self.message_user(request, f"{delivery}: {exc}", messages.ERROR)
            return False
        self.log_change(request, delivery, "Redelivered")
        return True

    @admin.action(description="Redeliver the selected deliveries")
    def redeliver(self, request: HttpRequest, queryset: QuerySet) -> None:
        done = 0
        # Owner (organization id, None for the platform) over its limit -> its refusal and the
        # deliveries left unsent. Budgets are per owner, so one owner's refusal says nothing
        # about another's deliveries, which still go.
        refused: dict[Any, tuple[str, list[WebhookDelivery]]] = {}
        for delivery in self.each_allowed(request, queryset, Perm.MANAGE_ORG):
            owner = delivery.organization_id
            if owner in refused:
                refused[owner][1].append(delivery)
                continue
            try:
                done += self._redeliver(request, delivery)
            except services.TooManyManualSends as exc:
                refused[owner] = (str(exc), [delivery])
        for message, skipped in refused.values():
            names = ", ".join(str(delivery) for delivery in skipped)
            self.message_user(
                request, f"{_owner(skipped[0])}: {message}; not sent: {names}", messages.ERROR
            )
        if done:
            self.message_user(request, f"{done} delivery(ies) sent again.", messages.SUCCESS)

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<uuid:delivery_id>/redeliver/",
                self.admin_site.admin_view(require_POST(self.redeliver_view)),
                name="webhooks_webhookdelivery_redeliver",
            ),
            *super().get_urls(),
        ]

    def redeliver_view(self, request: HttpRequest, delivery_id: uuid.UUID) -> HttpResponse:
        delivery = self.get_queryset(request).filter(pk=delivery_id).first()
        if delivery is None or not self.has_view_permission(request, delivery):
            raise Http404("delivery not found")
        try:
            if self._redeliver(request, delivery):
                self.message_user(request, "Sent again.", messages.SUCCESS)
        except services.TooManyManualSends as exc:
            self.message_user(request, str(exc), messages.ERROR)
        return HttpResponseRedirect(
            reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk])
        )

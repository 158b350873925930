"""Console pages of DNS: domains with their record sets inline, saved through apps.dns.services
(name normalisation, the Route 53 credential rule, the CNAME rule, a reconcile queued after each
change), "Reconcile now", and "Show the plan" (the API's plan route, with "Apply this plan" when
the organization requires plans); the organizations' DNS settings (saved through the API's
settings service) and their stored plans (read-only)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_http_methods, require_POST

from apps.console.pages import ObjectPageMixin, domain_page
from apps.core.permissions import Perm
from apps.dns import names, services
from apps.dns.models import DNSPlan, DNSSettings, Domain, RecordSet
from apps.dns.serializers import (
    DNSSettingsSerializer,
    DomainCreateSerializer,
    DomainUpdateSerializer,
    RecordSetCreateSerializer,
    RecordSetUpdateSerializer,
)
from apps.orgs.console_base import (
    ORG_FILTER,
    SERVICE_ERRORS,
    APIRules,
    ConsoleModelForm,
    OrgScopedAdmin,
    OrgScopedInline,
    adopt,
    can,
    is_saved,
    record_formset_save,
    refusal_text,
)


class ValuesPerLineField(forms.CharField):
    """A record set's values, one per line (a JSON list, as the API takes it, is accepted too);
    blank lines are ignored. Cleans to the list the API's `values` is."""

    widget = forms.Textarea(attrs={"rows": 3, "cols": 40})

    def __init__(self, **kwargs: Any) -> None:
        kwargs.pop("encoder", None)
        kwargs.pop("decoder", None)
        kwargs.setdefault(
            "help_text",
            f"One value per line (a CNAME takes exactly one); at most {names.MAX_VALUES} values "
            f"of at most {names.MAX_VALUE_CHARS} characters each. Spaces around a line are "
            "dropped, except in TXT values, which are kept exactly as typed.",
        )
        super().__init__(strip=False, **kwargs)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list):
            return "\n".join(str(item) for item in value)
        return value

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value) or ""
        if text.strip().startswith("[") and text.strip().endswith("]"):
            # A JSON list only when it is the whole content, and a list of strings: a TXT line
            # that merely starts with "[" is a value like any other.
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            if isinstance(parsed, list) and all(isinstance(item, str) for item in parsed):
                return parsed
        return [line.rstrip("\r") for line in text.split("\n") if line.strip()]

    def has_changed(self, initial: Any, data: Any) -> bool:
        return self.to_python(self.prepare_value(initial) or "") != self.to_python(data or "")


class RecordSetForm(ConsoleModelForm):
    """Record sets with their values typed one per line and the TTL's bounds as help."""

    values = ValuesPerLineField(required=False)
    ttl = forms.IntegerField(
        required=False,
        help_text=f"Seconds, {names.MIN_TTL} to {names.MAX_TTL}; empty: {names.DEFAULT_TTL}.",
    )

    def clean_values(self) -> Any:
        # Stray spaces around an address or a name are typing noise (and would be refused);
        # in a TXT value they may be meant, so TXT lines are kept as typed.
        values = self.cleaned_data.get("values")
        rtype = self.cleaned_data.get("type") or getattr(self.instance, "type", "")
        if not isinstance(values, list) or str(rtype).upper() == RecordSet.Type.TXT:
            return values
        return [value.strip() if isinstance(value, str) else value for value in values]


RECORD_FIELDS = ("name", "type", "ttl", "values")
# The services normalise and check names and values; the serializers bound them first.
RECORD_RULES = APIRules(create=RecordSetCreateSerializer, update=RecordSetUpdateSerializer)


class RecordSetInline(OrgScopedInline):
    model = RecordSet
    form = RecordSetForm
    fields = ("name", "type", "ttl", "values", "owner", "status", "last_error")
    readonly_fields = ("owner", "status", "last_error")
    api_rules = RECORD_RULES


@admin.register(Domain)
class DomainAdmin(ObjectPageMixin, OrgScopedAdmin):
    list_display = ("domain_name", "organization", "zone_id", "status", "last_error", "created_at")
    list_filter = ("status", ORG_FILTER)
    search_fields = ("domain_name", "zone_id")
    list_select_related = ("organization",)
    autocomplete_fields = ("credential",)
    fields = (
        "organization",
        "domain_name",
        "credential",
        "zone_id",
        "status",
        "last_error",
        "created_at",
        "updated_at",
    )
    readonly_fields = ("status", "last_error", "created_at", "updated_at")
    api_rules = APIRules(create=DomainCreateSerializer, update=DomainUpdateSerializer)
    inlines = [RecordSetInline]
    actions = ["reconcile_now", "show_plan"]
    change_form_template = "admin/dns/domain/change_form.html"

    def object_page(self, request: HttpRequest, obj: Domain) -> dict[str, Any]:
        return domain_page(obj)

    def save_model(self, request: HttpRequest, obj: Domain, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if change:
            changes: dict[str, Any] = {}
            for name in ("domain_name", "zone_id"):
                if name in form.changed_data:
                    changes[name] = data[name]
            if "credential" in form.changed_data:
                changes["credential_id"] = data["credential"].pk
            if changes:
                adopt(obj, services.domain_update(domain=obj, changes=changes))
            return
        created = services.domain_create(
            organization_id=obj.organization_id,
            domain_name=data["domain_name"],
            credential_id=data["credential"].pk,
            zone_id=data.get("zone_id") or "",
        )
        adopt(obj, created)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        domain = form.instance
        deleted = set(map(id, formset.deleted_forms))
        removed = [row.instance for row in formset.deleted_forms if is_saved(row.instance)]
        for record_set in removed:
            services.record_set_delete(record_set=record_set)
        new, changed = [], []
        for row in formset.forms:
            if id(row) in deleted or not row.has_changed():
                continue
            values = {n: row.cleaned_data.get(n) for n in RECORD_FIELDS}
            if is_saved(row.instance):
                changes = {n: v for n, v in values.items() if n in row.changed_data}
                changed.append(services.record_set_update(record_set=row.instance, changes=changes))
            else:
                new.append(services.record_set_create(domain=domain, **values))
        record_formset_save(formset, new=new, changed=changed, deleted=removed)

    def delete_model(self, request: HttpRequest, obj: Domain) -> None:
        services.domain_delete(domain=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for domain in queryset:
            services.domain_delete(domain=domain)

    @admin.action(description="Reconcile now")
    def reconcile_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        for domain in self.each_allowed(request, queryset, Perm.WRITE):
            job = services.domain_reconcile_enqueue(domain=domain)
            if job is None:
                self.message_user(request, f"{domain}: a reconcile is already queued or running")
                continue
            self.log_change(request, domain, f"Queued a reconcile (job {job.pk})")
            self.message_user(request, f"{domain}: reconcile queued (job {job.pk})")

    # The plan: what the next reconcile would change, as `GET /dns/domains/{id}/plan` says.

    @admin.action(description="Show the plan")
    def show_plan(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one domain.", messages.ERROR)
            return None
        return HttpResponseRedirect(
            reverse("admin:dns_domain_plan", args=[queryset.values_list("pk", flat=True)[0]])
        )

    def get_urls(self) -> list[Any]:
        plan = path(
            "<path:object_id>/plan/",
            self.admin_site.admin_view(require_http_methods(["GET", "POST"])(self.plan_view)),
            name="dns_domain_plan",
        )
        return [plan, *super().get_urls()]

    def plan_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The domain's latest plan (GET reads only); "Make a new plan" (POST) reads the zone
        now and stores a plan, as the API's plan route does (reading rights)."""
        domain = self.get_object(request, object_id)
        if domain is None:
            # Django's own "no such object" message and redirect; private, so not in the stubs.
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)  # type: ignore[attr-defined]
        self.require(request, Perm.READ, domain)
        if request.method == "POST":
            try:
                made = services.domain_plan_create(domain=domain)
            except SERVICE_ERRORS as exc:
                self.message_user(request, f"{domain}: {refusal_text(exc)}", messages.ERROR)
                return HttpResponseRedirect(reverse("admin:dns_domain_change", args=[domain.pk]))
            self.log_change(request, domain, f"Computed a DNS plan (plan {made.pk})")
            return HttpResponseRedirect(request.path)
        plan = DNSPlan.objects.filter(domain=domain).order_by("-created_at").first()
        dns_settings = services.dns_settings_get(organization_id=domain.organization_id)
        require_plan = dns_settings.require_plan
        context = {
            **self.admin_site.each_context(request),
            "title": f"The plan for {domain}",
            "opts": self.opts,
            "domain": domain,
            "plan": plan,
            "rows": plan_rows(plan) if plan is not None else [],
            "require_plan": require_plan,
            "can_apply": plan is not None
            and plan.status == DNSPlan.Status.OPEN
            and require_plan
            and can(request, Perm.WRITE, domain.organization_id),
        }
        return TemplateResponse(request, "admin/dns/domain/plan.html", context)


@admin.register(RecordSet)
class RecordSetAdmin(OrgScopedAdmin):
    form = RecordSetForm
    list_display = ("name", "type", "domain", "organization", "owner", "status", "last_error")
    list_filter = ("type", "status", "owner", ORG_FILTER)
    search_fields = ("name", "domain__domain_name")
    list_select_related = ("domain", "organization")
    autocomplete_fields = ("domain",)
    immutable_fields = ("domain",)
    fields = (
        "organization",
        "domain",
        *RECORD_FIELDS,
        "owner",
        "status",
        "last_error",
        "fingerprint",
        "created_at",
        "updated_at",
    )
    readonly_fields = ("owner", "status", "last_error", "fingerprint", "created_at", "updated_at")
    api_rules = RECORD_RULES

    def save_model(self, request: HttpRequest, obj: RecordSet, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if change:
            changes = {n: data[n] for n in RECORD_FIELDS if n in form.changed_data}
            if changes:
                adopt(obj, services.record_set_update(record_set=obj, changes=changes))
            return
        values = {n: data.get(n) for n in RECORD_FIELDS}
        adopt(obj, services.record_set_create(domain=data["domain"], **values))

    def delete_model(self, request: HttpRequest, obj: RecordSet) -> None:
        services.record_set_delete(record_set=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for record_set in queryset:
            services.record_set_delete(record_set=record_set)


def plan_rows(plan: DNSPlan) -> list[dict[str, Any]]:
    """The plan's stored changes flattened for the template (every key present: a missing
    `values` would make the template call the dict's own `values()`)."""
    rows = []
    for change in plan.changes or []:
        previous = change.get("previous") or {}
        old_ttl = previous.get("ttl")
        rows.append(
            {
                "action": change.get("action", ""),
                "kind": change.get("kind", ""),
                "name": change.get("name", ""),
                "type": change.get("type", ""),
                "ttl": change.get("ttl"),
                "new_values": " ".join(change.get("values") or []),
                "old_values": " ".join(previous.get("values") or []),
                "old_ttl": old_ttl if old_ttl != change.get("ttl") else None,
                "owner": change.get("owner", ""),
                "reason": change.get("reason", ""),
            }
        )
    return rows


def plan_changes_html(plan: DNSPlan) -> str:
    """The plan's changes as a table: action, what it touches, and the ownership verdict."""
    return render_to_string("admin/dns/plan_changes.html", {"rows": plan_rows(plan)})


def plan_summary_text(plan: DNSPlan) -> str:
    summary = plan.summary or {}
    words = ("create", "update", "delete", "conflict")
    return ", ".join(f"{summary.get(word, 0)} {word}" for word in words)


def _job_url(job_id: uuid.UUID | None) -> str:
    if job_id is None:
        return ""
    try:
        return reverse("admin:jobs_jobrun_change", args=[job_id])
    except NoReverseMatch:
        return ""


@admin.register(DNSSettings)
class DNSSettingsAdmin(OrgScopedAdmin):
    """An organization's DNS settings. Changing them is an organization policy (owners and
    admins), as on `PATCH /dns/settings`; there is nothing to delete (turn the setting off)."""

    list_display = ("__str__", "organization", "require_plan", "updated_at")
    list_filter = ("require_plan", ORG_FILTER)
    search_fields = ("organization__name",)
    list_select_related = ("organization",)
    fields = ("organization", "require_plan", "created_at", "updated_at")
    readonly_fields = ("created_at", "updated_at")
    api_rules = APIRules(create=DNSSettingsSerializer)
    add_perm = Perm.MANAGE_ORG
    change_perm = Perm.MANAGE_ORG

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: DNSSettings, form: Any, change: bool) -> None:
        saved = services.dns_settings_update(
            organization_id=obj.organization_id, require_plan=form.cleaned_data["require_plan"]
        )
        adopt(obj, saved)


@admin.register(DNSPlan)
class DNSPlanAdmin(OrgScopedAdmin):
    """Stored plans, read-only: they are made by "Show the plan" (or the API) and applied by
    "Apply this plan" (the API's apply service), never edited."""

    list_display = ("__str__", "domain", "organization", "status", "summary_text", "created_at")
    list_filter = ("status", ORG_FILTER)
    search_fields = ("domain__domain_name",)
    list_select_related = ("domain", "organization")
    fields = (
        "organization",
        "domain",
        "status",
        "summary_text",
        "job_link",
        "error",
        "created_at",
        "applied_at",
        "changes_table",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="summary")
    def summary_text(self, obj: DNSPlan) -> str:
        return plan_summary_text(obj)

    @admin.display(description="job")
    def job_link(self, obj: DNSPlan) -> str:
        url = _job_url(obj.job_id)
        if not url:
            return str(obj.job_id or "-")
        return format_html('<a href="{}">{}</a>', url, obj.job_id)

    @admin.display(description="changes")
    def changes_table(self, obj: DNSPlan) -> str:
        return plan_changes_html(obj)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # An open plan can be applied from here too (after "a reconcile is running", say).
        context = dict(extra_context or {})
        plan = self.get_object(request, object_id)
        if plan is not None and plan.status == DNSPlan.Status.OPEN:
            require_plan = services.dns_settings_get(
                organization_id=plan.organization_id
            ).require_plan
            context["can_apply"] = require_plan and can(request, Perm.WRITE, plan.organization_id)
        return super().change_view(request, object_id, form_url, context)

    def get_urls(self) -> list[Any]:
        apply = path(
            "<uuid:plan_id>/apply/",
            self.admin_site.admin_view(require_POST(self.apply_view)),
            name="dns_dnsplan_apply",
        )
        return [apply, *super().get_urls()]

    def apply_view(self, request: HttpRequest, plan_id: uuid.UUID) -> HttpResponse:
        """Apply a reviewed plan: `POST /dns/plans/{id}/apply` (writing rights), its refusals
        (stale, not open, a reconcile running) shown as messages."""
        plan = self.get_queryset(request).select_related("domain").filter(pk=plan_id).first()
        if plan is None:
            # Django's own "no such object" message and redirect; private, so not in the stubs.
            return self._get_obj_does_not_exist_redirect(request, self.opts, str(plan_id))  # type: ignore[attr-defined]
        self.require(request, Perm.WRITE, plan)
        back = HttpResponseRedirect(reverse("admin:dns_dnsplan_change", args=[plan.pk]))
        try:
            plan = services.dns_plan_apply(plan=plan)
        except SERVICE_ERRORS as exc:
            self.message_user(request, f"Not applied: {refusal_text(exc)}", messages.ERROR)
            return back
        self.log_change(request, plan.domain, f"Applied DNS plan {plan.pk} (job {plan.job_id})")
        url = _job_url(plan.job_id)
        self.message_user(
            request,
            format_html('Plan applying (job {}). <a href="{}">Follow its log</a>', plan.job_id, url)
            if url
            else f"Plan applying (job {plan.job_id}).",
            messages.SUCCESS,
        )
        return back

"""The console's base classes: every admin page of an org-owned model goes through these, so the
console is exactly as safe as the API.

- Who sees what: platform admins (`User.is_superuser`) see every organization; anyone else sees
  the rows of the organizations they belong to, and the same role table the API uses
  (`apps.core.permissions.ROLE_PERMISSIONS`) decides what they may view, add, change and delete.
- Choices: every foreign key and autocomplete offers only rows of the user's organizations (and
  of the edited object's organization once it has one); the form refuses any reference to a row
  of another organization, whatever was posted.
- Fixed fields: an existing object's organization (and each admin's `immutable_fields`) cannot
  change; posting another value is a form error, not a silent no-op.
- The API's rules for every value: each admin names the API request serializers of its model
  (`api_rules`, an `APIRules`), and every form field they also have is run through them on
  each save (`APIRulesFormMixin`): a value the API answers 400 is a form error here, never a
  saved row. A field the API has no rule for is listed in `APIRules.console_only` with the
  reason; `tests/test_admin_walk.py` fails for any editable console field that is neither.
- One path for every write: admins save through the API's services. A service's refusal
  (`APIError`, `ValidationError`) raised while saving rolls the whole save back and shows the
  same page again with the service's message as a form error (`changeform_view`), never a 500.
- Secrets render as "set" / "not set" (`secret_state`); reveals and downloads are explicit,
  role-checked actions that write a LogEntry (`log_reveal`).
"""

from __future__ import annotations

import dataclasses
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, cast
from urllib.parse import urlsplit

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import FieldDoesNotExist, PermissionDenied, ValidationError
from django.db import models
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import Resolver404, resolve
from django.utils.html import format_html
from rest_framework import serializers

from apps.accounts import tokens
from apps.core.api.errors import APIError
from apps.core.console_admin import ConsoleAdmin, time_element
from apps.core.permissions import Perm, role_allows
from apps.orgs.models import Membership, Organization

# --- who may do what ---------------------------------------------------------------------------


def is_platform_admin(request: HttpRequest) -> bool:
    return bool(getattr(request.user, "is_superuser", False))


def console_roles(request: HttpRequest) -> dict[uuid.UUID, str]:
    """The request user's role in each of their organizations, read once per request."""
    roles = getattr(request, "_console_roles", None)
    if roles is None:
        user = request.user
        roles = {}
        if getattr(user, "is_authenticated", False) and user.pk:
            roles = dict(
                Membership.objects.filter(user_id=user.pk).values_list("organization_id", "role")
            )
        request._console_roles = roles  # type: ignore[attr-defined]
    return roles


def orgs_allowing(request: HttpRequest, perm: Perm) -> list[uuid.UUID]:
    """Ids of the organizations where the request user's role holds `perm`."""
    return [org_id for org_id, role in console_roles(request).items() if role_allows(role, perm)]


def can(request: HttpRequest, perm: Perm, organization_id: Any) -> bool:
    """Whether the request user holds `perm` in that organization (platform admins always)."""
    if is_platform_admin(request):
        return True
    if organization_id is None:
        return False
    return role_allows(console_roles(request).get(organization_id, ""), perm)


def is_saved(obj: models.Model) -> bool:
    """Whether the row exists (UUID primary keys are set before the first save)."""
    return not obj._state.adding


class OrganizationListFilter(admin.RelatedFieldListFilter):
    """A changelist's organization filter: the organizations the user may see the page's rows
    in (every one for platform admins). Django's plain related filter would list every
    organization's name; its related-only filter reads `SELECT DISTINCT organization_id` over
    the whole listed table on each view (job runs, webhook deliveries: millions of rows). This
    one reads the organizations table only."""

    def field_choices(self, field: Any, request: HttpRequest, model_admin: Any) -> list:
        orgs = Organization.objects.order_by("name")
        if not is_platform_admin(request):
            perm = getattr(model_admin, "view_perm", Perm.READ)
            orgs = orgs.filter(pk__in=orgs_allowing(request, perm))
        return [(org.pk, str(org)) for org in orgs]


# The organization filter of a changelist (see OrganizationListFilter).
ORG_FILTER = ("organization", OrganizationListFilter)


def secret_state(value: Any) -> str:
    """How a secret column shows in the console: whether it is set, never what it is."""
    return "set" if value else "not set"


# --- service refusals as form errors ---------------------------------------------------------

# "field: message", "field[2]: message" or "field.inner.path: message" (the API's messages).
_FIELD_PREFIX = re.compile(r"^([a-z_][a-z0-9_]*)((?:\.[\w-]+|\[\d+\])*): (.+)$", re.DOTALL)
SERVICE_ERRORS = (APIError, ValidationError)


def refusal_messages(exc: Exception) -> list[tuple[str | None, str]]:
    """(field or None, message) pairs of a service's refusal."""
    if isinstance(exc, APIError):
        match = _FIELD_PREFIX.match(exc.message)
        if not match:
            return [(None, exc.message)]
        field, path, message = match.groups()
        path = path.lstrip(".")
        return [(field, f"{path}: {message}" if path else message)]
    if isinstance(exc, ValidationError):
        if hasattr(exc, "error_dict"):
            return [
                (None if field == "__all__" else field, message)
                for field, errors in exc.message_dict.items()
                for message in errors
            ]
        return [(None, message) for message in exc.messages]
    return [(None, str(exc))]


def refusal_text(exc: Exception) -> str:
    return "; ".join(f"{f}: {m}" if f else m for f, m in refusal_messages(exc))


# --- the API's rules on console forms -------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class APIRules:
    """The API request serializers a console form's values must pass, as the same value posted
    to the API would.

    `create` checks a new row, `update` (default: `create`) the fields changed on an existing
    one, both partially: the form itself decides which fields are required. `wire_names` maps a
    form field to its name in the API where they differ (`provider` -> `cluster_provider`).
    `console_only` lists the form fields the API has no rule for, each with the reason (a
    reference field needs none: the form refuses another organization's row)."""

    create: type[serializers.Serializer]
    update: type[serializers.Serializer] | None = None
    wire_names: Mapping[str, str] = dataclasses.field(default_factory=dict)
    console_only: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def serializer_for(self, *, saved: bool) -> type[serializers.Serializer]:
        return (self.update or self.create) if saved else self.create

    def checks(self, name: str) -> bool:
        """Whether the API has a rule for the form field `name` (on create or update)."""
        wire = self.wire_names.get(name, name)
        for cls in (self.create, self.update):
            wire_field = cls().fields.get(wire) if cls is not None else None
            if wire_field is not None and not wire_field.read_only:
                return True
        return False


def _error_texts(detail: Any, path: str = "") -> list[str]:
    """DRF's nested error detail (lists, `{index: [...]}` for list items) as flat messages."""
    if isinstance(detail, dict):
        return [text for key, inner in detail.items() for text in _error_texts(inner, f"[{key}]")]
    if isinstance(detail, list):
        return [text for inner in detail for text in _error_texts(inner, path)]
    return [f"{path}: {detail}" if path else str(detail)]


class APIRulesFormMixin:
    """Runs a form's cleaned values through the API's serializers (`console_api_rules`) and
    shows their refusals as the form's errors, so the console accepts exactly what the API
    accepts."""

    console_api_rules: ClassVar[APIRules | None] = None

    def api_rules_instance(self) -> Any:
        """The row being changed (so uniqueness checks exclude it), or None for a new one."""
        instance = getattr(self, "instance", None)
        return instance if instance is not None and is_saved(instance) else None

    def check_api_rules(self, cleaned: dict[str, Any]) -> None:
        """Run the values through the API's serializer; its refusals become form errors, and
        accepted values are saved as the API would save them (normalised by the serializer: a
        lowercased choice, a domain without its trailing dot, no address stored as None)."""
        rules = self.console_api_rules
        if rules is None:
            return
        form = cast("forms.BaseForm", self)
        instance = self.api_rules_instance()
        serializer_class = rules.serializer_for(saved=instance is not None)
        wire_fields = serializer_class().fields
        # Like a PATCH, a change is checked on the fields it changes.
        names = form.changed_data if instance is not None else list(form.fields)
        data, form_names = _api_payload(rules, wire_fields, cleaned, names)
        if not data:
            return
        serializer = serializer_class(instance, data=data, partial=True)
        try:
            valid = serializer.is_valid()
        except SERVICE_ERRORS as exc:  # a validate_<field> that answers with the API's code
            valid, refusals = False, refusal_messages(exc)
        else:
            refusals = [
                (wire, text)
                for wire, detail in serializer.errors.items()
                for text in _error_texts(detail)
            ]
        if valid:
            for wire_name, form_name in form_names.items():
                source = wire_fields[wire_name].source
                if source in serializer.validated_data:
                    cleaned[form_name] = serializer.validated_data[source]
        for wire, message in refusals:
            target = form_names.get(wire or "")
            if target is not None:
                form.add_error(target, message)
            else:
                form.add_error(None, f"{wire}: {message}" if wire else message)


def _api_payload(
    rules: APIRules, wire_fields: Mapping[str, Any], cleaned: dict[str, Any], names: list[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """(the request body the API would get, wire name -> form field) for the form fields
    `names` that the serializer has."""
    data: dict[str, Any] = {}
    form_names: dict[str, str] = {}
    for name in names:
        wire = rules.wire_names.get(name, name)
        wire_field = wire_fields.get(wire)
        if name not in cleaned or wire_field is None or wire_field.read_only:
            continue
        value = cleaned[name]
        if isinstance(value, models.Model | models.QuerySet):
            continue  # a reference: _refuse_other_orgs_references checks it
        if value is None and not wire_field.allow_null:
            if not getattr(wire_field, "allow_blank", False):
                continue  # unset: whether it is required is the form's rule
            value = ""
        data[wire] = value
        form_names[wire] = name
    return data, form_names


class ConsoleModelForm(APIRulesFormMixin, forms.ModelForm):
    """The form base of every console admin. `console_admin`, `console_request` and
    `console_api_rules` are bound by `OrgScopedAdmin.get_form` (or the inline's
    `get_formset`)."""

    console_admin: ClassVar[Any] = None
    console_request: ClassVar[Any] = None
    # For inline forms: the parent object the row belongs to.
    console_parent: ClassVar[Any] = None

    def console_org_id(self) -> Any:
        """The organization this form's object belongs (or will belong) to."""
        if self.console_parent is not None:
            return getattr(self.console_parent, "organization_id", None)
        if is_saved(self.instance) and hasattr(self.instance, "organization_id"):
            return self.instance.organization_id
        org = self.cleaned_data.get("organization") if hasattr(self, "cleaned_data") else None
        return getattr(org, "pk", None)

    def clean(self) -> dict[str, Any]:
        super().clean()
        # ModelForm.clean answers cleaned_data (its stub allows None for forms in general).
        cleaned = self.cleaned_data
        self._refuse_immutable_changes()
        self._refuse_other_orgs_references(cleaned)
        self._refuse_org_without_role(cleaned)
        self.check_api_rules(cleaned)
        refusal = getattr(self.console_request, "_console_refusal", None)
        if refusal is not None and self.console_parent is None:
            for field, message in refusal_messages(refusal):
                # The API names a reference `credential_id` where the form has `credential`.
                if field and field not in self.fields and field.removesuffix("_id") in self.fields:
                    field = field.removesuffix("_id")
                if field in self.fields:
                    self.add_error(field, message)
                else:
                    self.add_error(None, f"{field}: {message}" if field else message)
        return cleaned

    def _refuse_immutable_changes(self) -> None:
        if not is_saved(self.instance) or self.console_admin is None:
            return
        for name in self.console_admin.get_immutable_fields():
            key = self.add_prefix(name)
            if key not in self.data:
                continue
            current = getattr(self.instance, self.instance._meta.get_field(name).attname)
            posted = self.data.get(key) or ""
            if str(posted).strip() != ("" if current is None else str(current)):
                label = self.instance._meta.get_field(name).verbose_name
                noun = self.instance._meta.verbose_name
                self.add_error(None, f"{label}: cannot be changed on an existing {noun}")

    def _refuse_other_orgs_references(self, cleaned: dict[str, Any]) -> None:
        org_id = self.console_org_id()
        if org_id is None:
            return
        for name, value in cleaned.items():
            if name == "organization" or name not in self.fields:
                continue
            values = value if isinstance(value, models.QuerySet | list | tuple) else [value]
            for item in values:
                item_org = getattr(item, "organization_id", None)
                if isinstance(item, models.Model) and item_org is not None and item_org != org_id:
                    self.add_error(name, f"{item} belongs to another organization")
                    break

    def _refuse_org_without_role(self, cleaned: dict[str, Any]) -> None:
        org = cleaned.get("organization")
        if is_saved(self.instance) or self.console_admin is None:
            return
        if not isinstance(org, Organization):
            return
        if not can(self.console_request, self.console_admin.add_perm, org.pk):
            self.add_error("organization", "your role in this organization does not allow this")


class _ScopedChoices:
    """Foreign-key choices limited to the user's organizations and the edited object's one."""

    # Extra limits per foreign key, e.g. {"bastion_server": Q(role="bastion")}.
    fk_filters: ClassVar[dict[str, models.Q]] = {}

    def _console_obj_org(self, request: HttpRequest) -> Any:
        obj = getattr(request, "_console_obj", None)
        return getattr(obj, "organization_id", None)

    def scoped_choices(self, request: HttpRequest, model: type[models.Model], name: str):
        qs = model._default_manager.all()
        if model is Organization:
            if not is_platform_admin(request):
                perm = getattr(self, "add_perm", Perm.WRITE)
                qs = qs.filter(pk__in=orgs_allowing(request, perm))
        elif any(f.name == "organization" for f in model._meta.concrete_fields):
            if not is_platform_admin(request):
                qs = qs.filter(organization_id__in=orgs_allowing(request, Perm.READ))
            org_id = self._console_obj_org(request)
            if org_id is not None:
                qs = qs.filter(organization_id=org_id)
        if name in self.fk_filters:
            qs = qs.filter(self.fk_filters[name])
        return qs

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any):
        if "queryset" not in kwargs:
            kwargs["queryset"] = self.scoped_choices(
                request, db_field.remote_field.model, db_field.name
            )
        if "widget" not in kwargs and db_field.name in self.get_autocomplete_fields(request):  # type: ignore[attr-defined]
            kwargs["widget"] = SafeAutocompleteSelect(
                db_field,
                self.admin_site,  # type: ignore[attr-defined]
                using=kwargs.get("using"),
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]


class SafeAutocompleteSelect(AutocompleteSelect):
    """Django's autocomplete widget, except that re-rendering a form posted with a malformed id
    (not a UUID) shows the field's error instead of failing while looking the id up."""

    def optgroups(self, name: str, value: Sequence[Any], attr: dict | None = None) -> list:
        remote = self.field.remote_field
        target = remote.model._meta.get_field(
            getattr(remote, "field_name", None) or remote.model._meta.pk.name
        )
        valid = []
        for item in value:
            try:
                target.to_python(item)
            except ValidationError:
                continue
            valid.append(item)
        return super().optgroups(name, valid, attr)


def _edited_object_org(request: HttpRequest) -> Any:
    """The organization of the object whose change page asks an autocomplete (its Referer), so
    the widget offers only that organization's rows; None on add pages or anything else. The
    form refuses another organization's row anyway; this keeps it out of the choices."""
    referer = urlsplit(request.META.get("HTTP_REFERER", "")).path
    try:
        match = resolve(referer)
    except Resolver404:
        return None
    model_admin = getattr(match.func, "model_admin", None)
    if not (match.url_name or "").endswith("_change") or model_admin is None:
        return None
    try:
        obj = model_admin.get_queryset(request).filter(pk=match.kwargs.get("object_id")).first()
    except (ValidationError, ValueError):
        return None
    if obj is None:
        return None
    if isinstance(obj, Organization):
        return obj.pk
    return getattr(obj, "organization_id", None)


# --- history --------------------------------------------------------------------------------

# The audit log's entries about an object, newest first, for its history page: told by the
# console app (apps.console.apps), which may read the audit log; this layer may not import it.
HISTORY_SOURCE: list[Callable[[models.Model], list[Any]]] = []


# --- the base admin ----------------------------------------------------------------------------


class OrgScopedAdmin(_ScopedChoices, ConsoleAdmin):
    """Admin of a model with an `organization` foreign key (or, with `org_field = None` and
    `platform_only = True`, a platform-wide model only platform admins reach)."""

    form = ConsoleModelForm
    org_field: ClassVar[str | None] = "organization"
    platform_only: ClassVar[bool] = False
    view_perm: ClassVar[Perm] = Perm.READ
    change_perm: ClassVar[Perm] = Perm.WRITE
    add_perm: ClassVar[Perm] = Perm.WRITE
    delete_perm: ClassVar[Perm] = Perm.WRITE
    immutable_fields: ClassVar[tuple[str, ...]] = ()
    # Autocomplete limits by the field asking: {("cluster", "bastion_server"): Q(role=...)}.
    autocomplete_filters: ClassVar[dict[tuple[str, str], models.Q]] = {}
    # The API's rules for this model's values (see APIRules); None only where nothing is edited.
    api_rules: ClassVar[APIRules | None] = None

    def get_autocomplete_fields(self, request: HttpRequest) -> list[str]:
        fields = list(super().get_autocomplete_fields(request))
        if self.org_field == "organization" and "organization" not in fields:
            # Scoped like every choice (OrganizationAdmin lists only the user's organizations).
            fields.append("organization")
        return fields

    def get_list_display(self, request: HttpRequest) -> Any:
        return badged_list_display(self.model, super().get_list_display(request))

    def get_immutable_fields(self) -> list[str]:
        fields = list(self.immutable_fields)
        if self.org_field == "organization" and "organization" not in fields:
            fields.insert(0, "organization")
        return fields

    # Who sees what

    def obj_org_id(self, obj: Any) -> Any:
        return getattr(obj, f"{self.org_field}_id", None) if self.org_field else None

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        qs = super().get_queryset(request)
        if is_platform_admin(request):
            # Platform admins run the platform: every organization's rows.
            return qs
        if self.platform_only or not self.org_field:
            return qs.none()
        return qs.filter(**{f"{self.org_field}__in": orgs_allowing(request, self.view_perm)})

    def _allowed(self, request: HttpRequest, perm: Perm, obj: Any) -> bool:
        if is_platform_admin(request):
            return True
        if self.platform_only or not self.org_field:
            return False
        if obj is None:
            return bool(orgs_allowing(request, perm))
        return can(request, perm, self.obj_org_id(obj))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request, self.view_perm, None)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, self.view_perm, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, self.change_perm, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request, self.add_perm, None)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, self.delete_perm, obj)

    # Forms

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields += [f for f in self.get_immutable_fields() if f not in fields]
        return fields

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any):
        request._console_obj = obj  # type: ignore[attr-defined]
        form = super().get_form(request, obj, change=change, **kwargs)
        bound = {
            "console_admin": self,
            "console_request": request,
            "console_api_rules": self.api_rules,
        }
        return type(form.__name__, (form,), bound)

    def get_search_results(self, request: HttpRequest, queryset: models.QuerySet, search_term: str):
        match = getattr(request, "resolver_match", None)
        if match is not None and match.url_name == "autocomplete":
            key = (request.GET.get("model_name", ""), request.GET.get("field_name", ""))
            if key in self.autocomplete_filters:
                queryset = queryset.filter(self.autocomplete_filters[key])
            org_id = _edited_object_org(request)
            if org_id is not None and self.org_field == "organization":
                queryset = queryset.filter(organization_id=org_id)
        return super().get_search_results(request, queryset, search_term)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> Any:
        """Any list's search box: a pasted API key (with its secret, a header name, quotes) is
        searched again by its public form, so the secret leaves the address bar and is never
        rendered back in the title, the box or a link, nor reaches a query."""
        shown = tokens.redacted_key_text(request.GET.get("q", ""))
        if shown is not None:
            query = request.GET.copy()
            query["q"] = shown
            return HttpResponseRedirect(f"{request.path}?{query.urlencode()}")
        return super().changelist_view(request, extra_context)

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except SERVICE_ERRORS as exc:
            # The save ran inside the admin's transaction, which the exception rolled back.
            # Show the same form again with the service's refusal as its error.
            if request.method != "POST" or getattr(request, "_console_refusal", None):
                raise
            request._console_refusal = exc  # type: ignore[attr-defined]
            return super().changeform_view(request, object_id, form_url, extra_context)

    object_history_template = "admin/console/object_history.html"

    def history_view(self, request: HttpRequest, object_id: str, extra_context: dict | None = None):
        """Django's history page (its own scoping and permission check), with the audit log's
        entries for the object for roles that may read the audit log (owners, admins, platform
        admins): who changed which field from what to what, jobs included."""
        context = dict(extra_context or {})
        obj = self.get_object(request, object_id)
        # The audit log is for owners and admins (manage_org), as in the API; other roles get
        # Django's own history of the object.
        if (
            obj is not None
            and self.has_view_permission(request, obj)
            and HISTORY_SOURCE
            and can(request, Perm.MANAGE_ORG, self.obj_org_id(obj))
        ):
            context["audit_entries"] = HISTORY_SOURCE[0](obj)
        return super().history_view(request, object_id, context)

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: dict | None = None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except SERVICE_ERRORS as exc:
            self.message_user(request, refusal_text(exc), messages.ERROR)
            return HttpResponseRedirect(request.path)

    def response_action(self, request: HttpRequest, queryset: models.QuerySet):
        try:
            return super().response_action(request, queryset)
        except SERVICE_ERRORS as exc:
            self.message_user(request, refusal_text(exc), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    # Actions

    def require(self, request: HttpRequest, perm: Perm, obj: Any) -> None:
        """Refuse an action on `obj` unless the user's role in its organization holds `perm`."""
        if not can(request, perm, self.obj_org_id(obj)):
            raise PermissionDenied

    def each_allowed(self, request: HttpRequest, queryset: models.QuerySet, perm: Perm):
        """The selected objects the user may act on; the others are reported, not touched."""
        for obj in queryset:
            if can(request, perm, self.obj_org_id(obj)):
                yield obj
            else:
                self.message_user(request, f"{obj}: your role does not allow this", messages.ERROR)

    def log_reveal(self, request: HttpRequest, obj: Any, what: str) -> None:
        """A LogEntry for an explicit secret read (the audit trail picks these up)."""
        self.log_change(request, obj, f"Revealed {what}")


class OrgScopedInlineFormSet(BaseInlineFormSet):
    """Inline rows take their parent's organization; they cannot be pointed at another's."""

    @classmethod
    def get_default_prefix(cls) -> str:
        # Join models with related_name="+" would all get an empty prefix.
        # The inline formset factory always sets `model`; the stub allows None for formsets.
        return super().get_default_prefix() or cls.model._meta.model_name  # type: ignore[union-attr]

    def _construct_form(self, i: int, **kwargs: Any):
        # A private Django hook (absent from the stubs): the one place each row form is built.
        form = super()._construct_form(i, **kwargs)  # type: ignore[misc]
        if hasattr(form.instance, "organization_id") and hasattr(self.instance, "organization_id"):
            form.instance.organization_id = self.instance.organization_id
        return form


class OrgScopedInline(_ScopedChoices, admin.TabularInline):
    """An inline of an org-owned child. Its rights are its parent's: whoever may change the
    parent may add, change and delete its rows."""

    form = ConsoleModelForm
    formset = OrgScopedInlineFormSet
    extra = 0
    exclude: ClassVar[tuple[str, ...]] = ("organization",)
    # The API's rules for the rows' values (see APIRules); None only for rows of references.
    api_rules: ClassVar[APIRules | None] = None

    def _parent_admin(self) -> OrgScopedAdmin:
        # OrgScopedInline is used only on the pages of OrgScopedAdmins.
        return cast("OrgScopedAdmin", self.admin_site._registry[self.parent_model])

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any):
        formset = super().get_formset(request, obj, **kwargs)
        form = type(
            formset.form.__name__,
            (formset.form,),
            {
                "console_admin": None,
                "console_request": request,
                "console_parent": obj,
                "console_api_rules": self.api_rules,
            },
        )
        formset.form = form
        return formset

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        # Each row's title is its target's name (the join models' __str__).
        qs = super().get_queryset(request).select_related(*self.autocomplete_fields)
        if is_platform_admin(request):
            return qs
        return qs.filter(organization_id__in=orgs_allowing(request, Perm.READ))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._parent_admin().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        parent = self._parent_admin()
        if obj is None:
            return parent.has_add_permission(request)
        return parent.has_change_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_add_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_add_permission(request, obj)


def adopt(obj: models.Model, created: models.Model) -> None:
    """Make the admin's unsaved `obj` the row a service just created, so the rest of the admin's
    save (inlines, the redirect, the LogEntry) works on that row."""
    for field in obj._meta.concrete_fields:
        setattr(obj, field.attname, getattr(created, field.attname))
    obj._state.adding = False
    obj._state.db = created._state.db


def record_formset_save(
    formset: Any, *, new: list[Any], changed: list[Any], deleted: list[Any]
) -> None:
    """What `formset.save()` would have recorded, for an admin that saved the rows through a
    service instead: the admin's change message (its LogEntry) is built from these."""
    formset.new_objects = new
    formset.changed_objects = [(obj, ["row"]) for obj in changed]
    formset.deleted_objects = deleted


# --- confirmation before destructive and security actions -------------------------------------


def confirmed(request: HttpRequest) -> bool:
    """Whether the request is the POST of a confirmation page (`confirm_page`)."""
    return request.method == "POST" and request.POST.get("confirm") == "yes"


def confirm_page(
    request: HttpRequest,
    model_admin: admin.ModelAdmin,
    *,
    title: str,
    question: str,
    objects: Sequence[Any],
    confirm_label: str,
    action: str = "",
) -> HttpResponse:
    """A page that names what is about to happen and asks for one more POST. For a list action
    (`action` set) the selected rows and the action ride along, as Django's delete page does;
    otherwise the page posts back to its own URL."""
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": title,
        "question": question,
        "objects": objects,
        "confirm_label": confirm_label,
        "action": action,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "back_url": request.META.get("HTTP_REFERER", ""),
    }
    return TemplateResponse(request, "admin/console/confirm.html", context)


# --- status badges and times, on every list -----------------------------------------------------

# How each status value is coloured, the same wherever it shows (lists, dashboard, search).
_STATUS_TONES = {
    "ok": {"ready", "succeeded", "applied", "completed", "active"},
    "busy": {
        "queued",
        "running",
        "pending",
        "pre_pending",
        "provisioning",
        "applying",
        "bootstrapping",
        "retrying",
    },
    "error": {"failed", "stale", "incomplete"},
}
# The statuses during which work is under way (a job queued or running on the object): pages
# showing one refresh themselves. `pending` is busy-coloured but not here: an object may wait
# in it for long (a server never bootstrapped), and a page must not reload for that.
ACTIVE_STATUSES = frozenset(
    {"queued", "running", "provisioning", "applying", "bootstrapping", "retrying"}
)


def status_tone(status: Any) -> str:
    """ "ok", "busy", "error" or "neutral" for a status value."""
    value = str(status or "")
    for tone, values in _STATUS_TONES.items():
        if value in values:
            return tone
    return "neutral"


def status_badge(status: Any) -> str:
    """A status as a coloured badge (`console.css`: `.ag-badge-<tone>`)."""
    value = str(status or "")
    if not value:
        return "—"
    return format_html(
        '<span class="ag-badge ag-badge-{}{}" data-status="{}">{}</span>',
        status_tone(value),
        " ag-badge-active" if value in ACTIVE_STATUSES else "",
        value,
        value.replace("_", " "),
    )


def _status_column(obj: Any) -> str:
    return status_badge(getattr(obj, "status", ""))


def _time_column(name: str, label: str) -> Any:
    def column(obj: Any) -> str:
        return time_element(getattr(obj, name))

    column.short_description = label  # type: ignore[attr-defined]
    column.admin_order_field = name  # type: ignore[attr-defined]
    column.__name__ = name
    return column


def badged_list_display(model: type[models.Model], names: Sequence[Any]) -> list[Any]:
    """A list's columns with its `status` as a badge and its moments as `<time>` elements."""
    columns: list[Any] = []
    for name in names:
        field = None
        if isinstance(name, str):
            try:
                field = model._meta.get_field(name)
            except FieldDoesNotExist:
                field = None
        if name == "status" and field is not None:
            column = _status_column
            column.short_description = "status"  # type: ignore[attr-defined]
            column.admin_order_field = "status"  # type: ignore[attr-defined]
            columns.append(column)
        elif isinstance(field, models.DateTimeField):
            columns.append(_time_column(field.name, str(field.verbose_name)))
        else:
            columns.append(name)
    return columns

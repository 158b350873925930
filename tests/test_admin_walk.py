"""No console page answers 500: every registered model's changelist (plain, searched, filtered),
add page and change page, as a platform admin and as the owner of one organization. And the
console accepts exactly what the API accepts: every editable field is checked by the API's rules,
each value the API refuses is refused by the matching console form, status fields are shown only.
"""

from __future__ import annotations

import pytest
from django import forms
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse

from apps.accounts.tests.factories import UserFactory
from apps.clusters.models import Action, Cluster, ClusterMetadata
from apps.orgs.console_base import OrgScopedAdmin
from apps.orgs.tests.admin_support import build_world, console_for, form_data, staff_of

pytestmark = pytest.mark.django_db


def _registered() -> list:
    return sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


def _url(model, view: str, *args) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


def _changelists(model, model_admin) -> list[str]:
    base = _url(model, "changelist")
    urls = [base, f"{base}?q=a"]
    for list_filter in model_admin.list_filter:
        if isinstance(list_filter, str) and "__" not in list_filter:
            urls.append(f"{base}?{list_filter}__isnull=False")
    return urls


@pytest.fixture
def worlds(org, other_org):
    return build_world(org, "acme"), build_world(other_org, "globex")


def test_every_console_page_of_every_model_answers_a_platform_admin(worlds):
    console = console_for(UserFactory(primary_email="root@autoglue.example", is_admin=True))
    assert console.get("/admin/").status_code == 200
    for model, model_admin in _registered():
        for url in _changelists(model, model_admin):
            response = console.get(url)
            # A filter a model does not support is answered with a redirect (?e=1), not a 500.
            assert response.status_code in (200, 302), (url, response.status_code)
        add = console.get(_url(model, "add"))
        assert add.status_code in (200, 403), (model, add.status_code)
        obj = model._default_manager.first()
        if obj is not None:
            change = console.get(_url(model, "change", obj.pk))
            assert change.status_code == 200, (model, change.status_code)
            if isinstance(model_admin, OrgScopedAdmin):
                # References are picked by name (autocomplete), never typed as raw ids.
                assert "vForeignKeyRawIdAdminField" not in change.content.decode(), model
            assert "object (" not in change.context["title"], change.context["title"]
            history = console.get(_url(model, "history", obj.pk))
            assert history.status_code == 200, (model, history.status_code)


@pytest.mark.parametrize("role", ["owner", "member", "viewer"])
def test_every_console_page_answers_the_staff_of_one_organization(worlds, org, role):
    ours, theirs = worlds
    console = console_for(staff_of(org, role))
    assert console.get("/admin/").status_code == 200
    for model, model_admin in _registered():
        for url in _changelists(model, model_admin):
            response = console.get(url)
            assert response.status_code in (200, 302, 403), (url, response.status_code)
        add = console.get(_url(model, "add"))
        assert add.status_code in (200, 403), (model, add.status_code)
        if not isinstance(model_admin, OrgScopedAdmin):
            continue
        mine = next((o for o in ours.objects.values() if isinstance(o, model)), None)
        other = next((o for o in theirs.objects.values() if isinstance(o, model)), None)
        if mine is not None:
            page = console.get(_url(model, "change", mine.pk))
            assert page.status_code in (200, 302, 403), (model, page.status_code)
        if other is not None:
            # Another organization's object is "not found" (a redirect to the index).
            page = console.get(_url(model, "change", other.pk))
            assert page.status_code in (302, 403), (model, page.status_code)


def test_posting_empty_or_garbage_forms_never_answers_a_server_error(worlds):
    console = console_for(UserFactory(primary_email="root@autoglue.example", is_admin=True))
    garbage = {
        "organization": "not-a-uuid",
        "name": "x" * 5000,
        "ssh_port": "99999999999999999999",
        "bits": "7",
        "values": "{not json",
        "scope": "[",
        "role": "emperor",
    }
    for model, _ in _registered():
        obj = model._default_manager.first()
        urls = [_url(model, "add")] + ([_url(model, "change", obj.pk)] if obj else [])
        for url in urls:
            for data in ({}, garbage):
                response = console.post(url, data)
                assert response.status_code in (200, 302, 403), (url, response.status_code)


# --- the API's rules hold in the console -------------------------------------------------------


def _platform_admin():
    return UserFactory(primary_email="root@autoglue.example", is_admin=True)


def test_every_editable_console_field_is_checked_by_the_api_rules(worlds):
    ours, _ = worlds
    request = RequestFactory().get("/admin/")
    request.user = _platform_admin()
    unchecked = []
    for model, model_admin in _registered():
        if not isinstance(model_admin, OrgScopedAdmin):
            continue
        obj = next((o for o in ours.objects.values() if isinstance(o, model)), None)
        obj = obj or model._default_manager.first()
        pages = [None] + ([obj] if obj is not None else [])
        for page_obj in pages:
            if page_obj is None and not model_admin.has_add_permission(request):
                continue
            if page_obj is not None and not model_admin.has_change_permission(request, page_obj):
                continue
            form_classes = [model_admin.get_form(request, page_obj, change=page_obj is not None)]
            form_classes += [
                inline.get_formset(request, page_obj).form
                for inline in model_admin.get_inline_instances(request, page_obj)
            ]
            for form_class in form_classes:
                rules = form_class.console_api_rules
                for name, field in form_class.base_fields.items():
                    if isinstance(field, forms.ModelChoiceField):
                        continue  # a reference: the form refuses another organization's row
                    if rules is not None and (rules.checks(name) or name in rules.console_only):
                        continue
                    unchecked.append(f"{form_class.__name__}.{name}")
    assert unchecked == []


# (world object, field, a value the API answers 400, the console user's role in the org)
REFUSED = [
    ("cluster", "docker_image", "-v/:/host", "member"),
    ("cluster", "docker_image", "ghcr.io/a/b:tag", "member"),
    ("cluster", "docker_tag", "v1;id", "member"),
    ("cluster", "docker_tag", "-x", "member"),
    ("server", "hostname", "-oProxyCommand=sh", "member"),
    ("server", "ssh_user", "-oProxyCommand=sh", "member"),
    ("server", "private_ip_address", "169.254.169.254", "member"),
    ("server", "public_ip_address", "224.0.0.1", "member"),
    ("server", "ssh_port", "0", "member"),
    ("server", "role", "emperor", "member"),
    ("sshkey", "name", "deploy\nssh-ed25519 AAAA evil", "member"),
    ("sshkey", "comment", "ops\nssh-ed25519 AAAA evil", "member"),
    ("label", "key", "not a key!", "member"),
    ("label", "value", "-bad-", "member"),
    ("annotation", "key", "bad key", "member"),
    ("taint", "key", "bad key", "member"),
    ("taint", "value", "a b", "member"),
    ("taint", "effect", "Bogus", "member"),
    ("nodepool", "role", "emperor", "member"),
    ("loadbalancer", "kind", "bogus", "member"),
    ("loadbalancer", "private_ip_address", "not-an-ip", "member"),
    ("credential", "name", "x" * 101, "owner"),
    ("credential", "account_id", "x" * 33, "owner"),
    ("domain", "domain_name", "not a domain!", "member"),
    ("domain", "zone_id", "Z" * 129, "member"),
    ("recordset", "ttl", "0", "member"),
    ("recordset", "ttl", "86401", "member"),
    ("recordset", "type", "BOGUS", "member"),
    ("recordset", "values", '["not-an-ip"]', "member"),
    ("organization", "domain", "not a domain", "owner"),
    ("organization", "name", "   ", "owner"),
    ("membership", "role", "emperor", "owner"),
    ("apikey", "name", "x" * 256, "owner"),
]


@pytest.mark.parametrize(
    ("name", "field", "value", "role"),
    REFUSED,
    ids=[f"{n}.{f}={v[:20]!r}" for n, f, v, _ in REFUSED],
)
def test_a_value_the_api_refuses_is_refused_by_the_console_form(
    worlds, org, name, field, value, role
):
    obj = worlds[0][name]
    before = getattr(type(obj)._default_manager.get(pk=obj.pk), field)
    console = console_for(staff_of(org, role))
    url = _url(type(obj), "change", obj.pk)
    data = form_data(console.get(url))
    data[field] = value

    response = console.post(url, data)

    assert response.status_code == 200, (response.status_code, response.get("Location"))
    assert field in response.context["adminform"].form.errors, response.context[
        "adminform"
    ].form.errors
    assert getattr(type(obj)._default_manager.get(pk=obj.pk), field) == before


def test_a_platform_admins_action_with_a_hostile_make_target_is_not_saved(worlds):
    console = console_for(_platform_admin())
    action = worlds[0]["clusterrun"].action_ref
    add = _url(Action, "add")
    data = {"label": "Evil", "description": "runs id", "make_target": "--eval=$(shell id)"}

    created = console.post(add, data)
    change_url = _url(Action, "change", action.pk)
    changed = console.post(change_url, {**form_data(console.get(change_url)), **data})

    for response in (created, changed):
        assert response.status_code == 200
        assert "make_target" in response.context["adminform"].form.errors
    assert not Action.objects.filter(make_target="--eval=$(shell id)").exists()


def test_a_members_new_cluster_with_a_hostile_docker_image_is_not_saved(worlds, org):
    console = console_for(staff_of(org, "member"))
    add = _url(Cluster, "add")
    data = form_data(console.get(add))
    data.update(organization=str(org.pk), name="hostile", docker_image="-v/:/host")

    response = console.post(add, data)

    assert response.status_code == 200
    assert "docker_image" in response.context["adminform"].form.errors
    assert not Cluster.objects.filter(name="hostile").exists()


def test_cluster_metadata_over_the_apis_size_limit_is_refused_in_the_console(worlds, org):
    cluster = worlds[0]["cluster"]
    console = console_for(staff_of(org, "member"))
    url = _url(Cluster, "change", cluster.pk)
    data = form_data(console.get(url))
    key = next(k for k in data if k.endswith("-0-value"))
    data[key] = "x" * (16 * 1024 + 1)

    response = console.post(url, data)

    assert response.status_code == 200
    assert "16384" in str(
        [inline.formset.errors for inline in response.context["inline_admin_formsets"]]
    )
    assert not ClusterMetadata.objects.filter(value__startswith="xxxx").exists()


# (world object, its status field, what a hand-typed status would have been)
STATUSES = [
    ("server", "status", "ready"),
    ("cluster", "status", "ready"),
    ("domain", "status", "ready"),
    ("recordset", "status", "ready"),
]


@pytest.mark.parametrize(("name", "field", "value"), STATUSES)
def test_status_fields_are_shown_but_never_written_by_the_console(worlds, name, field, value):
    obj = worlds[0][name]
    before = getattr(obj, field)
    assert before != value
    console = console_for(_platform_admin())
    url = _url(type(obj), "change", obj.pk)
    page = console.get(url)
    assert field not in page.context["adminform"].form.fields
    data = form_data(page)
    data[field] = value

    response = console.post(url, data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    obj.refresh_from_db()
    assert getattr(obj, field) == before

"""For every model in the console, the staff of one organization cannot see or reach another
organization's objects: not in a list, not on a change, delete or history page, not among the
choices of any autocomplete, not through an action."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from apps.jobs.models import JobRun
from apps.orgs.console_base import OrgScopedAdmin
from apps.orgs.tests.admin_support import build_world, console_for, staff_of
from apps.orgs.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def _url(model, view: str, *args) -> str:
    opts = model._meta
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


def _scoped_admins() -> list:
    """Every console page of a model that belongs to an organization, whoever wrote it."""
    return [
        (model, model_admin)
        for model, model_admin in sorted(
            admin.site._registry.items(), key=lambda item: item[0]._meta.label
        )
        if isinstance(model_admin, OrgScopedAdmin)
        or any(f.attname == "organization_id" for f in model._meta.concrete_fields)
    ]


def _theirs(world, model):
    return [o for o in world.objects.values() if isinstance(o, model)]


@pytest.fixture
def worlds(org, other_org):
    return build_world(org, "acme"), build_world(other_org, "globex")


@pytest.fixture
def alice(org):
    """The owner of `org` (every right there, none elsewhere)."""
    return console_for(staff_of(org, "owner", "alice@acme.example"))


def test_lists_show_only_the_staff_members_own_organizations_objects(worlds, alice):
    ours, theirs = worlds
    checked = 0
    for model, _ in _scoped_admins():
        response = alice.get(_url(model, "changelist"))
        if response.status_code == 403:
            continue
        assert response.status_code == 200, model
        shown = {obj.pk for obj in response.context["cl"].result_list}
        # Not a name of theirs anywhere on the page (rows, filters, choices).
        assert "globex" not in response.content.decode().lower(), model
        for other in _theirs(theirs, model):
            assert other.pk not in shown, (model, other)
        for mine in _theirs(ours, model):
            assert mine.pk in shown, (model, mine)
        checked += 1
    assert checked >= 15


def test_another_organizations_objects_cannot_be_opened_changed_or_deleted(worlds, alice):
    _, theirs = worlds
    for model, _ in _scoped_admins():
        for other in _theirs(theirs, model):
            for view in ("change", "delete", "history"):
                response = alice.get(_url(model, view, other.pk))
                assert response.status_code in (302, 403), (model, view, response.status_code)
                assert str(other) not in response.content.decode(), (model, view)
            posted = alice.post(_url(model, "change", other.pk), {"name": "taken over"})
            assert posted.status_code in (302, 403), (model, posted.status_code)
            deleted = alice.post(_url(model, "delete", other.pk), {"post": "yes"})
            assert deleted.status_code in (302, 403), (model, deleted.status_code)
            assert model._default_manager.filter(pk=other.pk).exists(), model


def test_the_object_pages_buttons_and_job_pages_refuse_another_organizations_objects(worlds, alice):
    ours, theirs = worlds
    cluster, run = theirs.objects["cluster"], theirs.objects["clusterrun"]
    bastion, job = theirs.objects["bastion"], theirs.objects["jobrun"]
    cluster.kubeconfig = "CANARY-globex-kubeconfig"
    cluster.save()
    gets = [
        f"/admin/clusters/cluster/{cluster.pk}/run-action/",
        f"/admin/jobs/jobrun/{job.pk}/status/",
        f"/admin/jobs/jobrun/{job.pk}/log/download/",
        f"/admin/jobs/jobrun/{job.pk}/log/stream/",
        f"/admin/infrastructure/server/{bastion.pk}/bootstrap/confirm/",
    ]
    posts = [
        f"/admin/clusters/cluster/{cluster.pk}/run-action/",
        f"/admin/clusters/cluster/{cluster.pk}/kubeconfig/",
        f"/admin/clusters/cluster/{cluster.pk}/runs/{run.pk}/cancel/",
        # Their run, through our own cluster's page.
        f"/admin/clusters/cluster/{ours.objects['cluster'].pk}/runs/{run.pk}/cancel/",
        f"/admin/infrastructure/server/{bastion.pk}/bootstrap/",
    ]
    for url in gets:
        response = alice.get(url)
        assert response.status_code == 404, (url, response.status_code)
    for url in posts:
        response = alice.post(url, {"catalogue_action": str(run.action_ref_id)})
        assert response.status_code == 404, (url, response.status_code)
        assert b"CANARY-globex" not in response.content
    run.refresh_from_db()
    bastion.refresh_from_db()
    assert run.status == "queued" and bastion.status == "pending"
    assert not JobRun.objects.filter(subject_id=bastion.pk).exclude(pk=job.pk).exists()
    # Our own object pages show none of their rows.
    for name in ("cluster", "bastion", "server", "domain", "jobrun"):
        obj = ours.objects[name]
        page = alice.get(_url(type(obj), "change", obj.pk))
        assert page.status_code == 200, name
        assert "globex" not in page.content.decode().lower(), name
        history = alice.get(_url(type(obj), "history", obj.pk))
        assert "globex" not in history.content.decode().lower(), name


def test_actions_on_the_changelist_never_touch_another_organizations_objects(worlds, alice):
    _, theirs = worlds
    for model, model_admin in _scoped_admins():
        others = _theirs(theirs, model)
        if not others:
            continue
        before = {o.pk: o.updated_at for o in others if hasattr(o, "updated_at")}
        for action in model_admin.actions or []:
            name = action if isinstance(action, str) else action.__name__
            alice.post(
                _url(model, "changelist"),
                # Confirmed, so actions that ask first (revoke, retire) reach their scoping.
                {
                    "action": name,
                    "_selected_action": [str(o.pk) for o in others],
                    "apply": "1",
                    "confirm": "yes",
                },
            )
        alice.post(
            _url(model, "changelist"),
            {
                "action": "delete_selected",
                "_selected_action": [str(o.pk) for o in others],
                "post": "yes",
            },
        )
        for other in others:
            row = model._default_manager.filter(pk=other.pk).first()
            assert row is not None, model
            if other.pk in before:
                assert row.updated_at == before[other.pk], (model, "changed by an action")


def _autocomplete_fields() -> list[tuple]:
    """(source model, field name) for every autocomplete widget of the console, inlines too."""
    found = []
    for model, model_admin in admin.site._registry.items():
        for name in model_admin.get_autocomplete_fields(None):
            found.append((model, name))
        for inline in model_admin.inlines:
            for name in inline.autocomplete_fields:
                found.append((inline.model, name))
    return found


def test_no_autocomplete_offers_another_organizations_objects(worlds, alice):
    ours, theirs = worlds
    fields = _autocomplete_fields()
    assert len(fields) >= 12
    for source, name in fields:
        target = source._meta.get_field(name).remote_field.model
        response = alice.get(
            "/admin/autocomplete/",
            {
                "app_label": source._meta.app_label,
                "model_name": source._meta.model_name,
                "field_name": name,
                "term": "",
            },
        )
        if response.status_code == 403:
            continue
        assert response.status_code == 200, (source, name, response.status_code)
        offered = {row["id"] for row in response.json()["results"]}
        for other in _theirs(theirs, target):
            assert str(other.pk) not in offered, (source, name, other)


def test_the_bastion_autocomplete_offers_only_bastions_and_the_node_pool_one_none(worlds, alice):
    ours, _ = worlds

    def offered(model_name: str, field_name: str, app_label: str = "clusters") -> set[str]:
        response = alice.get(
            "/admin/autocomplete/",
            {"app_label": app_label, "model_name": model_name, "field_name": field_name},
        )
        return {row["id"] for row in response.json()["results"]}

    assert offered("cluster", "bastion_server") == {str(ours["bastion"].pk)}
    assert offered("nodepoolserver", "server") == {str(ours["server"].pk)}


def test_a_platform_admin_sees_every_organization(worlds):
    from apps.accounts.tests.factories import UserFactory

    ours, theirs = worlds
    root = console_for(UserFactory(primary_email="root@autoglue.example", is_admin=True))
    response = root.get(_url(type(theirs["cluster"]), "changelist"))
    shown = {obj.pk for obj in response.context["cl"].result_list}
    assert {ours["cluster"].pk, theirs["cluster"].pk} <= shown


def test_platform_models_are_closed_to_organization_staff(worlds, alice):
    from apps.accounts.models import RefreshToken, SigningKey, UserEmail
    from apps.clusters.models import Action
    from apps.core.models import DataKey

    for model in (SigningKey, RefreshToken, UserEmail, Action, DataKey):
        assert alice.get(_url(model, "changelist")).status_code == 403, model


def test_an_autocomplete_on_a_change_page_offers_only_that_objects_organization(
    worlds, org, other_org
):
    ours, theirs = worlds
    both = staff_of(org, "owner", "olga@acme.example")
    MembershipFactory(user=both, organization=other_org, role="owner")
    console = console_for(both)
    query = {"app_label": "clusters", "model_name": "cluster", "field_name": "bastion_server"}

    on_ours = console.get(
        "/admin/autocomplete/",
        query,
        HTTP_REFERER=f"http://testserver/admin/clusters/cluster/{ours['cluster'].pk}/change/",
    )
    on_add = console.get(
        "/admin/autocomplete/", query, HTTP_REFERER="http://testserver/admin/clusters/cluster/add/"
    )

    assert {row["id"] for row in on_ours.json()["results"]} == {str(ours["bastion"].pk)}
    assert {row["id"] for row in on_add.json()["results"]} == {
        str(ours["bastion"].pk),
        str(theirs["bastion"].pk),
    }


def test_a_person_in_no_organization_or_disabled_cannot_open_the_console(org):
    from apps.accounts.tests.factories import UserFactory

    loner = console_for(UserFactory(primary_email="loner@example.com"))
    disabled = staff_of(org, "owner", "gone@acme.example")
    disabled.is_disabled = True
    disabled.save()

    for client in (loner, console_for(disabled)):
        response = client.get("/admin/clusters/cluster/")
        assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_search_box_never_finds_another_organizations_objects(worlds, alice):
    ours, theirs = worlds
    # Both bastions have the same public address; only Alice's is hers to find.
    found = alice.get("/admin/search/", {"q": "198.51.100.7"}, follow=True)
    assert str(ours["bastion"].pk) in found.content.decode()
    assert str(theirs["bastion"].pk) not in found.content.decode()
    terms = ["globex", theirs["apikey"].public_id, f"org_{theirs['apikey'].public_id}"]
    for term in terms:
        page = alice.get("/admin/search/", {"q": term}, follow=True).content.decode()
        assert "globex" not in page.replace(term, ""), term
        for other in theirs.objects.values():
            assert str(other.pk) not in page, (term, other)


def test_operation_pages_refuse_another_organizations_objects(worlds, alice):
    _, theirs = worlds
    key, domain = theirs["apikey"], theirs["domain"]
    for url in (
        f"/admin/accounts/apikey/{key.pk}/revoke/",
        f"/admin/dns/domain/{domain.pk}/plan/",
    ):
        for response in (alice.get(url), alice.post(url, {"confirm": "yes"})):
            assert response.status_code in (302, 403), (url, response.status_code)
            assert "globex" not in response.content.decode(), url
    key.refresh_from_db()
    assert key.revoked_at is None
    assert not domain.plans.exists()

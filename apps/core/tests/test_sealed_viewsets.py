"""The scoping bases refuse any subclass that changes how objects are found, whether it overrides
`get_queryset`/`get_object` itself or brings them in by a mixin placed ahead of the base."""

from __future__ import annotations

import pytest
from rest_framework import viewsets

from apps.core.api.viewsets import (
    OrgScopedModelViewSet,
    OrgScopedViewSet,
    PlatformScopedModelViewSet,
)
from apps.webhooks.models import WebhookEndpoint

BASES = [OrgScopedViewSet, OrgScopedModelViewSet, PlatformScopedModelViewSet]


class _Unscoped(viewsets.GenericViewSet):
    """A mixin that would answer every organization's rows."""

    def get_queryset(self):
        return WebhookEndpoint.objects.all()


class _FindsAnything(viewsets.GenericViewSet):
    def get_object(self):
        return WebhookEndpoint.objects.first()


class _Harmless(viewsets.GenericViewSet):
    """Shared actions, as apps.webhooks.views._WebhookEndpointRoutes."""

    not_found_code = "thing_not_found"

    def describe(self) -> str:
        return "harmless"


@pytest.mark.parametrize("base", BASES, ids=lambda b: b.__name__)
@pytest.mark.parametrize("name", ["get_queryset", "get_object"])
def test_a_subclass_overriding_how_objects_are_found_is_refused(base, name):
    with pytest.raises(TypeError, match=name):
        type("Leaky", (base,), {name: lambda self: None, "__module__": __name__})


@pytest.mark.parametrize("base", BASES, ids=lambda b: b.__name__)
@pytest.mark.parametrize(
    ("mixin", "name"), [(_Unscoped, "get_queryset"), (_FindsAnything, "get_object")]
)
def test_a_mixin_ahead_of_the_base_cannot_override_how_objects_are_found(base, mixin, name):
    with pytest.raises(TypeError, match=f"{mixin.__name__}.*{name}"):
        type("Leaky", (mixin, base), {"__module__": __name__})


@pytest.mark.parametrize("base", BASES, ids=lambda b: b.__name__)
def test_a_mixin_of_the_base_s_further_subclass_is_refused_too(base):
    class Concrete(base):
        queryset = WebhookEndpoint.objects.all()

    with pytest.raises(TypeError, match="get_queryset"):
        type("Leaky", (_Unscoped, Concrete), {"__module__": __name__})


@pytest.mark.parametrize("base", BASES, ids=lambda b: b.__name__)
def test_a_mixin_that_finds_nothing_itself_is_welcome_ahead_of_the_base(base):
    view = type("Fine", (_Harmless, base), {"__module__": __name__})

    assert view.get_queryset is base.get_queryset
    assert view.not_found_code == "thing_not_found"


def test_no_class_outside_the_viewsets_module_may_declare_itself_a_scoping_base():
    with pytest.raises(TypeError, match="scoping base"):

        class Rogue(OrgScopedViewSet, scoping_base=True):
            def get_queryset(self):
                return WebhookEndpoint.objects.all()

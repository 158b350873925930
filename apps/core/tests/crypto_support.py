"""Throwaway models with encrypted fields for the secrets-at-rest tests.

Created per test (registered under the `core` label so the rotation services find them by
walking the app registry, as they find every real model) and unregistered afterwards, so no
other test or the migration check ever sees them.
"""

from __future__ import annotations

from contextlib import contextmanager

from django.apps import apps
from django.db import connection, models

from apps.core.fields import EncryptedTextField
from apps.core.models import OrgOwnedModel, TimeStampedModel

CANARY = "CANARY-7f3e1c2a-secret-at-rest"


def _model(model_name: str, base: type, **fields):
    meta = type("Meta", (), {"app_label": "core"})
    return type(model_name, (base,), {"__module__": __name__, "Meta": meta, **fields})


@contextmanager
def secret_models(*, drop: bool):
    """Yield (OrgSecret, PlatformSecret); their tables exist inside the block."""
    org_secret = _model(
        "TestOrgSecret",
        OrgOwnedModel,
        name=models.CharField(max_length=64, default=""),
        secret=EncryptedTextField(),
        note=EncryptedTextField(blank=True, null=True),
    )
    platform_secret = _model("TestPlatformSecret", TimeStampedModel, secret=EncryptedTextField())
    created = []
    try:
        with connection.schema_editor() as editor:
            for model in (org_secret, platform_secret):
                editor.create_model(model)
                created.append(model)
        yield org_secret, platform_secret
    finally:
        if drop and created:
            with connection.schema_editor() as editor:
                for model in created:
                    editor.delete_model(model)
        for model in (org_secret, platform_secret):
            apps.all_models["core"].pop(model._meta.model_name, None)
        apps.clear_cache()

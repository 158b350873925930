"""Console fixtures: Rita, a platform admin with a break-glass password, and a client signed
in as her."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.accounts.tests.factories import UserFactory
from apps.console.tests.support import PASSWORD


@pytest.fixture
def platform_admin(db):
    user = UserFactory(primary_email="rita@autoglue.example", is_admin=True)
    user.set_password(PASSWORD)
    user.save()
    return user


@pytest.fixture
def console(platform_admin) -> Client:
    client = Client()
    client.force_login(platform_admin)
    return client

from __future__ import annotations

import pytest

from apps.groupsync.tests.google_standin import Google, GoogleStandIn


@pytest.fixture
def google(settings) -> Google:
    """Google's token, Cloud Identity and Directory endpoints on loopback, with the settings
    pointed at them."""
    standin = GoogleStandIn()
    settings.GOOGLE_TOKEN_URL = f"{standin.google.base}/token"
    settings.GOOGLE_CLOUD_IDENTITY_URL = standin.google.base
    settings.GOOGLE_DIRECTORY_URL = standin.google.base
    settings.GOOGLE_GROUPS_TIMEOUT_SECONDS = 2
    yield standin.google
    standin.close()

import pytest

from apps.webhooks import services
from apps.webhooks.tests.receiver import receiver_running


@pytest.fixture
def plain_http(settings):
    """Loopback receivers speak plain HTTP; production refuses it by default."""
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_TIMEOUT_SECONDS = 1.0
    settings.AUTOGLUE_ALLOW_LOOPBACK_TARGETS = True
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    settings.WEBHOOK_ALLOWED_PORTS = []  # receivers listen on ephemeral ports


@pytest.fixture
def receiver(plain_http):
    with receiver_running() as running:
        yield running


@pytest.fixture
def endpoint_for(org):
    def make(receiver, **kwargs):
        endpoint, secret = services.webhook_endpoint_create(
            organization=kwargs.pop("organization", org), url=receiver.url, **kwargs
        )
        receiver.secrets.append(secret)
        return endpoint

    return make

from apps.accounts.tests.support import (  # noqa: F401
    _forget_local_keys,
    bearer_client,
    idp_url,
    real_org_key_client,
    signing_key,
)

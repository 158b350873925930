"""allauth's OpenID Connect provider with a nonce, for the console sign-in.

allauth checks state and PKCE but sends no nonce. This provider adds a fresh random nonce to
every authorization request and keeps it in allauth's server-side state for that request;
`SocialAccountAdapter.pre_social_login` refuses an ID token whose `nonce` differs, so an ID token
minted for another sign-in cannot be replayed into this one.
"""

from __future__ import annotations

import secrets
from typing import Any

from allauth.socialaccount.providers.openid_connect.provider import OpenIDConnectProvider

STATE_KEY = "oidc_nonce"


class NonceOpenIDConnectProvider(OpenIDConnectProvider):
    # allauth finds a provider's URLs and templates through its package; keep allauth's.
    package = "allauth.socialaccount.providers.openid_connect"

    def redirect(
        self, request: Any, process: Any, next_url: Any = None, data: Any = None, **kwargs: Any
    ) -> Any:
        nonce = secrets.token_urlsafe(32)
        auth_params = kwargs.pop("auth_params", None)
        if auth_params is None:
            auth_params = self.get_auth_params()
        auth_params = {**auth_params, "nonce": nonce}
        # Extra keyword arguments land in allauth's stashed state, returned to us at callback.
        return super().redirect(
            request,
            process,
            next_url,
            data,
            auth_params=auth_params,
            **{STATE_KEY: nonce},
            **kwargs,
        )

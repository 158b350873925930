"""allauth's OpenID Connect provider with a nonce, for the console sign-in.

allauth checks state and PKCE but sends no nonce. This provider adds a fresh random nonce to
every authorization request and keeps it in allauth's server-side state for that request;
`SocialAccountAdapter.pre_social_login` refuses an ID token whose `nonce` differs, so an ID token
minted for another sign-in cannot be replayed into this one.

The login and callback views below replace allauth's for the same paths (autoglue/urls.py lists
them first), so the ID token is verified as strictly as on the API's sign-in path, and the
provider's discovery document and keys come from the same cache (`sso.provider_document`): a
short outage of the provider's discovery endpoint does not stop sign-ins, and a longer one is a
readable 503 page (JSON for API clients), never a 500.
"""

from __future__ import annotations

import secrets
from typing import Any

from allauth.account.internal.decorators import login_not_required
from allauth.socialaccount.internal import jwtkit
from allauth.socialaccount.models import SocialApp
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from allauth.socialaccount.providers.oauth2.views import OAuth2CallbackView, OAuth2LoginView
from allauth.socialaccount.providers.openid_connect.provider import OpenIDConnectProvider
from allauth.socialaccount.providers.openid_connect.views import OpenIDConnectOAuth2Adapter
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from apps.accounts import sso
from apps.core.api.errors import APIError, error_response

STATE_KEY = "oidc_nonce"


class VerifyingOpenIDConnectAdapter(OpenIDConnectOAuth2Adapter):
    """allauth's adapter, but the ID token is checked as the API's sign-in checks it.

    allauth skips the signature when the token came straight from the token endpoint (the
    OpenID Connect spec allows it over TLS) and takes the algorithm from the token's own header.
    The console accepts neither: the signature is verified against the provider's JWKS (RS256
    only), with issuer, audience (this app's client id), expiry and issued-at required
    (`sso.id_token_claims`); the nonce is compared by `SocialAccountAdapter.pre_social_login`.
    The discovery document comes from `sso.provider_document` (cached, stale if unreachable)
    instead of being fetched on every request.
    """

    @property
    def openid_config(self) -> dict:
        if not hasattr(self, "_openid_config"):
            provider = self.get_provider()
            config = dict(
                sso.provider_document(provider.server_url, valid=sso.discovery_document_valid)
            )
            config.update(provider.app.settings.get("openid_configuration_overrides", {}))
            self._openid_config = config
        return self._openid_config

    def _decode_id_token(self, app: Any, id_token: str) -> dict:
        try:
            claims = sso.id_token_claims(self.openid_config, id_token, audience=app.client_id)
        except sso.ProviderUnavailable:
            raise  # answered by the view as a 503, not as a refused token
        except APIError as exc:
            raise OAuth2Error("Invalid id_token") from exc
        # allauth's own replay guard (a `jti` is accepted once), kept on top of the nonce.
        jwtkit.verify_jti(claims)
        return claims


class NonceOpenIDConnectProvider(OpenIDConnectProvider):
    # allauth finds a provider's URLs and templates through its package; keep allauth's.
    package = "allauth.socialaccount.providers.openid_connect"
    # The sign-in redirect builds its URLs with this adapter, so it reads the cached discovery
    # document too.
    oauth2_adapter_class = VerifyingOpenIDConnectAdapter

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


def _provider_unavailable(request: HttpRequest) -> HttpResponse:
    """The answer while the identity provider cannot be reached: a page for people, JSON for
    API clients, both 503 with Retry-After."""
    accept = request.headers.get("Accept", "")
    response: HttpResponse
    if "application/json" in accept and "text/html" not in accept:
        error = sso.ProviderUnavailable()
        response = error_response(503, error.error_code, error.message)
    else:
        response = render(request, "account/sso_unavailable.html", status=503)
    response["Retry-After"] = str(sso.PROVIDER_RETRY_AFTER_SECONDS)
    return response


@login_not_required
def login(request: HttpRequest, provider_id: str) -> Any:
    if request.method == "HEAD":
        # A HEAD (a link checker, a monitor) gets what GET gets, the page with the Continue
        # button: it never starts a sign-in, so it never reaches the provider.
        request.method = "GET"
    try:
        view = OAuth2LoginView.adapter_view(VerifyingOpenIDConnectAdapter(request, provider_id))
        return view(request)
    except SocialApp.DoesNotExist:
        raise Http404 from None
    except sso.ProviderUnavailable:
        return _provider_unavailable(request)


@login_not_required
def callback(request: HttpRequest, provider_id: str) -> Any:
    try:
        view = OAuth2CallbackView.adapter_view(VerifyingOpenIDConnectAdapter(request, provider_id))
        return view(request)
    except SocialApp.DoesNotExist:
        raise Http404 from None
    except sso.ProviderUnavailable:
        return _provider_unavailable(request)

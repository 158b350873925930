"""django-allauth adapter for the console sign-in: the same rules as the API's SSO flow
(apps.accounts.sso): verified e-mail, allowed Workspace domain, our own user linking and
verified-domain auto-join, disabled users refused."""

from __future__ import annotations

import hmac
from typing import Any

from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.shortcuts import render

from apps.accounts import oidc, sso
from apps.core.api.errors import APIError


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def _refuse(self, request: Any, message: str, status: int = 403) -> ImmediateHttpResponse:
        return ImmediateHttpResponse(
            render(request, "account/sso_refused.html", {"message": message}, status=status)
        )

    def pre_social_login(self, request: Any, sociallogin: Any) -> None:
        # Only the ID token's claims count, verified by oidc.VerifyingOpenIDConnectAdapter as
        # the API's sign-in verifies them; userinfo (also in extra_data) is not signed.
        id_token = (sociallogin.account.extra_data or {}).get("id_token")
        claims = dict(id_token) if isinstance(id_token, dict) else {}
        expected_nonce = (sociallogin.state or {}).get(oidc.STATE_KEY)
        received_nonce = claims.get("nonce")
        if (
            not expected_nonce
            or not isinstance(received_nonce, str)
            or not hmac.compare_digest(expected_nonce, received_nonce)
        ):
            raise self._refuse(request, "the sign-in response does not match this sign-in")
        try:
            email = sso._check_identity(claims)
        except APIError as exc:
            raise self._refuse(request, exc.message) from None
        try:
            user = sso.user_from_identity(
                provider="google",
                subject=str(sociallogin.account.uid),
                email=email,
                name=str(claims.get("name") or email.split("@")[0]),
                hd=str(claims.get("hd") or ""),
            )
        except APIError as exc:
            raise self._refuse(request, exc.message, status=exc.status_code) from None
        if user.is_disabled:
            raise self._refuse(request, "this account is disabled")
        sso.groups_at_sign_in(
            provider="google", user=user, email=email, hd=str(claims.get("hd") or "")
        )
        if not sociallogin.is_existing:
            sociallogin.connect(request, user)
        elif sociallogin.user.pk != user.pk:
            raise self._refuse(request, "this sign-in is linked to another account")

    def is_open_for_signup(self, request: Any, sociallogin: Any) -> bool:
        # Users are created by pre_social_login's linking, never by allauth's sign-up form.
        return True

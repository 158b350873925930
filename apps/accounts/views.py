"""Views of the auth and me tags. Thin: services do the work."""

from __future__ import annotations

import base64
from typing import ClassVar

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts import jwt as access_tokens
from apps.accounts import services
from apps.accounts.authentication import COOKIE_NAME
from apps.accounts.models import APIKey
from apps.accounts.permissions import IsUserPrincipal
from apps.accounts.serializers import (
    AuthStartSerializer,
    CreateKeySerializer,
    JWKSSerializer,
    MeSerializer,
    TokenPairSerializer,
    TokenRequestSerializer,
    UpdateMeSerializer,
    UserAPIKeyCreatedSerializer,
    UserAPIKeySerializer,
    UserSerializer,
)
from apps.core.api.pagination import list_response
from apps.core.api.transactions import AtomicWritesMixin
from apps.core.permissions import Perm
from apps.core.tenancy import parse_uuid, request_key_scope


def set_access_cookie(response: HttpResponse, request, access_token: str) -> None:
    """The `ag_jwt` cookie for browser pages. It never outlives the access token."""
    response.set_cookie(
        COOKIE_NAME,
        f"Bearer {access_token}",
        max_age=settings.JWT_ACCESS_TOKEN_SECONDS,
        path="/",
        secure=request.is_secure() or not settings.DEVELOPMENT,
        httponly=True,
        samesite="Lax",
    )


class PublicView(AtomicWritesMixin, APIView):
    """Routes anyone may call (credentials, if sent, are ignored)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]


class UserView(AtomicWritesMixin, APIView):
    permission_classes = [IsUserPrincipal]


def _b64u_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class JWKSView(PublicView):
    """GET /.well-known/jwks.json: every active, unexpired signing key."""

    @extend_schema(tags=["Auth"], operation_id="getJWKS", responses=JWKSSerializer)
    def get(self, request):
        keys = []
        for key in access_tokens.active_keys():
            public_key = load_pem_public_key(key.public_pem.encode())
            if not isinstance(public_key, rsa.RSAPublicKey):  # every signing key is RS256
                continue
            numbers = public_key.public_numbers()
            keys.append(
                {
                    "kty": "RSA",
                    "use": "sig",
                    "alg": key.alg,
                    "kid": key.kid,
                    "n": _b64u_uint(numbers.n),
                    "e": _b64u_uint(numbers.e),
                }
            )
        response = Response({"keys": keys})
        # Short, so consumers see a newly generated key about as soon as it starts signing.
        response["Cache-Control"] = "public, max-age=60"
        return response


class RefreshView(PublicView):
    """POST /auth/refresh: rotate the refresh token, return a TokenPair, set the cookie."""

    @extend_schema(
        tags=["Auth"],
        operation_id="refresh",
        request=TokenRequestSerializer,
        responses=TokenPairSerializer,
    )
    def post(self, request):
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        pair = services.token_pair_refresh(refresh_token=serializer.validated_data["refresh_token"])
        response = Response(pair.as_dict())
        response["Cache-Control"] = "no-store"
        set_access_cookie(response, request, pair.access_token)
        return response


class LogoutView(PublicView):
    """POST /auth/logout: revoke the token's family; 204 even for an unknown token."""

    @extend_schema(
        tags=["Auth"], operation_id="logout", request=TokenRequestSerializer, responses={204: None}
    )
    def post(self, request):
        data = request.data if isinstance(request.data, dict) else {}
        token = data.get("refresh_token")
        if isinstance(token, str):
            services.token_logout(refresh_token=token)
        response = Response(status=status.HTTP_204_NO_CONTENT)
        response.delete_cookie(COOKIE_NAME, path="/", samesite="Lax")
        return response


class MeView(UserView):
    """GET/PATCH /me. X-Org-ID plays no part here (a stale header must not break it)."""

    @extend_schema(tags=["Me"], operation_id="getMe", responses=MeSerializer)
    def get(self, request):
        return Response(MeSerializer(request.user).data)

    @extend_schema(
        tags=["Me"], operation_id="updateMe", request=UpdateMeSerializer, responses=UserSerializer
    )
    def patch(self, request):
        serializer = UpdateMeSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = services.user_update(
            user=request.user, display_name=serializer.validated_data.get("display_name")
        )
        return Response(UserSerializer(user).data)


class MyAPIKeysView(UserView):
    """GET/POST /me/api-keys."""

    scoped_key_permissions: ClassVar[dict[str, Perm]] = {"POST": Perm.MANAGE_KEYS}

    @extend_schema(
        tags=["MeAPIKeys"],
        operation_id="listUserAPIKeys",
        responses=UserAPIKeySerializer(many=True),
    )
    def get(self, request):
        keys = APIKey.objects.filter(
            user=request.user, scope=APIKey.Scope.USER, revoked_at__isnull=True
        ).order_by("-created_at")
        return list_response(request, keys, UserAPIKeySerializer, self)

    @extend_schema(
        tags=["MeAPIKeys"],
        operation_id="createUserAPIKey",
        request=CreateKeySerializer,
        responses={201: UserAPIKeyCreatedSerializer},
    )
    def post(self, request):
        serializer = CreateKeySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = services.api_key_create_for_user(
            user=request.user, **serializer.create_kwargs(creator=request_key_scope(request))
        )
        body = {**UserAPIKeySerializer(created.key).data, "plain": created.plain}
        response = Response(body, status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response


class MyAPIKeyView(UserView):
    """DELETE /me/api-keys/{id}."""

    scoped_key_permissions: ClassVar[dict[str, Perm]] = {"DELETE": Perm.MANAGE_KEYS}

    @extend_schema(
        tags=["MeAPIKeys"],
        operation_id="deleteUserAPIKey",
        responses={204: None},
        parameters=[OpenApiParameter("id", str, OpenApiParameter.PATH)],
    )
    def delete(self, request, key_id: str):
        services.api_key_revoke_for_user(user=request.user, key_id=parse_uuid(key_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SSOStartView(PublicView):
    """POST /auth/{provider}/start?mode=spa&origin=...: the provider's authorization URL."""

    @extend_schema(
        tags=["Auth"],
        operation_id="authStart",
        request=None,
        responses=AuthStartSerializer,
        parameters=[OpenApiParameter("mode", str), OpenApiParameter("origin", str)],
    )
    def post(self, request, provider: str):
        from apps.accounts import sso

        started = sso.sso_start(
            provider=provider,
            mode=request.query_params.get("mode", ""),
            origin=request.query_params.get("origin", ""),
        )
        response = Response({"auth_url": started.auth_url})
        response["Cache-Control"] = "no-store"
        # Binds the login to this browser: only then will the callback set the session cookie.
        response.set_cookie(
            sso.BINDING_COOKIE,
            started.binding,
            max_age=settings.SSO_STATE_SECONDS,
            path=sso.BINDING_COOKIE_PATH,
            secure=request.is_secure() or not settings.DEVELOPMENT,
            httponly=True,
            samesite="Lax",
        )
        return response


_POPUP_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Signing in…</title></head>
<body><p>Signing in…</p>
<script nonce="{nonce}">
(function () {{
  var payload = JSON.parse(atob("{payload}"));
  if (window.opener) {{
    window.opener.postMessage({{type: "autoglue:auth", payload: payload}}, {origin});
  }}
  window.close();
}})();
</script></body></html>
"""


class SSOCallbackView(PublicView):
    """GET /auth/{provider}/callback?code=...&state=...: finish the login. In SPA mode the tokens
    go to the opener window by postMessage, addressed to the origin (allow-listed when the
    login started); otherwise the TokenPair is the JSON body. The `ag_jwt` cookie is set only
    when the browser presents the binding cookie set by start for this very state: otherwise a
    victim's browser could be sent to an attacker's callback URL and signed into the attacker's
    account (login CSRF). Tokens in the page or body reach only the starter's allow-listed
    origin or whoever made this request, so they need no such check."""

    @extend_schema(
        tags=["Auth"],
        operation_id="authCallback",
        responses=TokenPairSerializer,
        parameters=[OpenApiParameter("code", str), OpenApiParameter("state", str)],
    )
    def get(self, request, provider: str):
        import json
        import secrets as _secrets

        from apps.accounts import sso

        state = request.query_params.get("state", "")
        bound = sso.binding_matches(state, request.COOKIES.get(sso.BINDING_COOKIE))
        result = sso.sso_complete(
            provider=provider, code=request.query_params.get("code", ""), state=state
        )
        if result.mode == "spa":
            nonce = _secrets.token_urlsafe(16)
            payload = base64.b64encode(json.dumps(result.tokens.as_dict()).encode()).decode()
            page = _POPUP_PAGE.format(
                nonce=nonce, payload=payload, origin=json.dumps(result.origin)
            )
            response = HttpResponse(page, content_type="text/html; charset=utf-8")
            response["Content-Security-Policy"] = (
                f"default-src 'none'; script-src 'nonce-{nonce}'; frame-ancestors 'none'"
            )
            # The popup must keep `window.opener` to post to a cross-origin SPA; the global
            # same-origin COOP would sever it (SecurityMiddleware keeps a header already set).
            response["Cross-Origin-Opener-Policy"] = "unsafe-none"
        else:
            response = Response(result.tokens.as_dict())
        response["Cache-Control"] = "no-store"
        if bound:
            set_access_cookie(response, request, result.tokens.access_token)
        response.delete_cookie(sso.BINDING_COOKIE, path=sso.BINDING_COOKIE_PATH, samesite="Lax")
        return response


@extend_schema(exclude=True)
class RootJWKSView(JWKSView):
    """The same document at the site root (the original serves both)."""

"""OpenAPI description of the authentication layer: the contract's four security schemes,
offered as alternatives (org key + secret together)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class AutoglueAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "apps.accounts.authentication.AutoglueAuthentication"
    name = ["BearerAuth", "ApiKeyAuth", "OrgKeyAuth", "OrgSecretAuth"]

    def get_security_requirement(self, auto_schema):
        return [{"BearerAuth": []}, {"ApiKeyAuth": []}, {"OrgKeyAuth": [], "OrgSecretAuth": []}]

    def get_security_definition(self, auto_schema):
        def header(name: str, description: str) -> dict:
            return {"type": "apiKey", "in": "header", "name": name, "description": description}

        return [
            header("Authorization", "Bearer token authentication"),
            header("X-API-KEY", "User API key"),
            header("X-ORG-KEY", "Org-level key/secret authentication"),
            header("X-ORG-SECRET", "Org-level secret"),
        ]

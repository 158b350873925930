"""Response helpers shared by every app."""

from __future__ import annotations

from typing import TypeVar

from django.http import HttpResponseBase

R = TypeVar("R", bound=HttpResponseBase)


def no_store(response: R) -> R:
    """Mark a response that carries a secret (a revealed key, a token, a cluster's join secrets)
    so that no browser, proxy or CDN keeps a copy."""
    response["Cache-Control"] = "no-store"
    return response

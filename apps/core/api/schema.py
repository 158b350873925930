"""OpenAPI document tweaks so the generated schema reads like the contract."""

from __future__ import annotations


def strip_trailing_slashes(result: dict, generator: object, request: object, public: bool) -> dict:
    """Routes tolerate a trailing slash (`/?` in their pattern); the contract's paths have none."""
    result["paths"] = {
        (path.rstrip("/") or "/"): operations for path, operations in result["paths"].items()
    }
    return result

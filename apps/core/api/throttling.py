"""Per-user and per-key rate limits, applied once DRF has authenticated the request.

The per-IP and sign-in limits run earlier, in apps.core.middleware.RateLimitMiddleware; this
adds the caller's own buckets (RATE_LIMIT_USER per person, whatever credential they use;
RATE_LIMIT_KEY per user API key or org key) and counts them in the same single round trip.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from apps.core import metrics
from apps.core.cache import cache_down
from apps.core.middleware import counted_buckets, rate_hit
from apps.core.tenancy import OrgKeyPrincipal


def _buckets(request: Any) -> list[tuple[str, str]]:
    auth = getattr(request, "auth", None)
    if isinstance(auth, OrgKeyPrincipal):
        return [(f"key:{auth.key_id}", settings.RATE_LIMIT_KEY)]
    user = getattr(request, "user", None)
    buckets = []
    if user is not None and getattr(user, "pk", None):
        buckets.append((f"user:{user.pk}", settings.RATE_LIMIT_USER))
    if isinstance(auth, dict) and auth.get("key_id"):
        buckets.append((f"key:{auth['key_id']}", settings.RATE_LIMIT_KEY))
    return buckets


class PrincipalRateThrottle(BaseThrottle):
    """429 `rate_limited` when the caller's user or key bucket is spent."""

    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request: Any, view: Any) -> bool:
        buckets = _buckets(request)
        if not buckets or cache_down():  # the cache failed a moment ago: fail open at once
            return True
        try:
            usages = rate_hit(buckets).usages
        except Exception:  # noqa: BLE001 - fail open, as the middleware does (it logs)
            return True
        django_request = request._request
        django_request.rate_limit_usages = [
            *getattr(django_request, "rate_limit_usages", []),
            *usages,
        ]
        for bucket, usage in zip(counted_buckets(buckets), usages, strict=False):
            if usage.exceeded:
                metrics.rate_limit_refusals.labels(bucket).inc()
                self._wait = usage.reset
                return False
        return True

    def wait(self) -> float | None:
        return self._wait

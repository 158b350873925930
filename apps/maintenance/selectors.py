"""Reads for expiry warnings, shared by the API route and the key sweep's log."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Q


def expiring_soon(*, now: datetime, within_days: int) -> Q:
    """Live (unrevoked, not yet expired) keys whose expiry falls within the window."""
    return Q(
        revoked_at__isnull=True,
        expires_at__gt=now,
        expires_at__lte=now + timedelta(days=within_days),
    )

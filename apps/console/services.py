"""Break-glass password sign-in throttling for the console.

Failures are counted in the shared cache per account (the e-mail typed, hashed) and per client
IP, in a fixed window of CONSOLE_LOGIN_WINDOW_SECONDS from the first failure. Past either limit
the password is not checked at all until the window ends, so guessing costs the attacker the
window, not us a slow hash per attempt. Google sign-in is not throttled here: the identity
provider does that.
"""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

_PREFIX = "console:login-failures:"


def _account_key(email: str) -> str:
    digest = hashlib.sha256(email.strip().lower().encode()).hexdigest()
    return f"{_PREFIX}account:{digest}"


def _ip_key(ip: str) -> str:
    return f"{_PREFIX}ip:{ip}"


def login_throttled(*, email: str, ip: str) -> bool:
    """Whether a sign-in for this account or from this address must be refused unchecked."""
    counts = cache.get_many([_account_key(email), _ip_key(ip)])
    return (
        counts.get(_account_key(email), 0) >= settings.CONSOLE_LOGIN_MAX_FAILURES_PER_ACCOUNT
        or counts.get(_ip_key(ip), 0) >= settings.CONSOLE_LOGIN_MAX_FAILURES_PER_IP
    )


def _bump(key: str) -> None:
    window = settings.CONSOLE_LOGIN_WINDOW_SECONDS
    cache.add(key, 0, timeout=window)
    try:
        cache.incr(key)
    except ValueError:  # expired or evicted between add and incr: start a new window
        cache.set(key, 1, timeout=window)


def login_failure_record(*, email: str, ip: str) -> None:
    """Count one failed password sign-in against the account and the address."""
    _bump(_account_key(email))
    _bump(_ip_key(ip))
    logger.warning(
        "console sign-in failed", extra={"event": "console_login_failed", "remote_ip": ip}
    )


def login_success_record(*, email: str) -> None:
    """A correct password clears the account's count (the address's count stays: one known
    password must not buy more guesses at other accounts)."""
    cache.delete(_account_key(email))

"""Readiness checks other apps add to `readyz` (apps.core imports no app: they register here).

A registered check returns "ok" or a short reason. It is advisory: `readyz` names it and says
`degraded`, but stays 200, because no check an app adds (a queue no worker consumes) is fixed by
taking this web process out of service. The database and the broker stay the checks that fail it.
"""

from __future__ import annotations

from collections.abc import Callable

_CHECKS: dict[str, Callable[[], str]] = {}


def register_check(name: str, check: Callable[[], str]) -> None:
    _CHECKS[name] = check


def advisory_checks() -> dict[str, Callable[[], str]]:
    return dict(_CHECKS)

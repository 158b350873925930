"""Facts other apps may act on, published where they happen (an audit entry written, a job
started or ended) and heard by listeners registered in `AppConfig.ready()`.

`apps.core` imports no app, so a publisher never names its listeners: the webhooks app turns
these facts into outbox rows without audit or jobs importing it. Listeners run synchronously
in the publisher's transaction, so what they write commits (or rolls back) with the change; a
listener that fails fails the change, as a failed audit entry does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Listener = Callable[[str, dict[str, Any]], None]

_listeners: list[Listener] = []


def event_listener_register(listener: Listener) -> None:
    """Hear every published fact (registering the same function twice hears it once)."""
    if listener not in _listeners:
        _listeners.append(listener)


def event_publish(name: str, **facts: Any) -> None:
    """Tell every listener that `name` happened, with its facts (rows, ids; never secrets)."""
    for listener in list(_listeners):
        listener(name, facts)

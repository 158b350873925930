"""Every auditable event type has a test that asserts its entry: a new type in
apps/audit/events.py without one fails here."""

from __future__ import annotations

import re
from pathlib import Path

from apps.audit import events

_ASSERTED = re.compile(r"assert_entry\(\s*events\.([A-Z_]+)")


def test_every_event_type_has_a_test_asserting_its_entry():
    asserted: set[str] = set()
    for path in Path(__file__).parent.glob("test_*.py"):
        for name in _ASSERTED.findall(path.read_text()):
            asserted.add(getattr(events, name))
    missing = sorted(events.EVENT_TYPES - asserted)
    assert missing == [], f"event types without a test asserting their entry: {missing}"


def test_the_registry_lists_every_event_constant():
    constants = {
        value for name, value in vars(events).items() if name.isupper() and isinstance(value, str)
    }
    assert constants == set(events.EVENT_TYPES)

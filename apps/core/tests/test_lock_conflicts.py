"""A write that PostgreSQL fails to break a deadlock is run again from the start; one that keeps
losing is a 503 with Retry-After, never a 500, and leaves nothing behind."""

from __future__ import annotations

import pytest
from django.db import OperationalError
from psycopg import errors

from apps.audit import events
from apps.audit.models import AuditEntry
from apps.clusters.models import Label

pytestmark = pytest.mark.django_db


def _deadlock() -> OperationalError:
    exc = OperationalError("deadlock detected")
    exc.__cause__ = errors.DeadlockDetected("deadlock detected")
    return exc


def _losing(times: int, monkeypatch) -> list[int]:
    """Make the first `times` audit writes of a request fail as a deadlock would."""
    from apps.audit import signals

    real, calls = signals.audit_record, []

    def flaky(**kwargs):
        calls.append(1)
        if len(calls) <= times:
            raise _deadlock()
        return real(**kwargs)

    monkeypatch.setattr(signals, "audit_record", flaky)
    return calls


def test_a_write_that_loses_a_deadlock_once_is_run_again_and_succeeds(api, org, monkeypatch):
    calls = _losing(1, monkeypatch)

    response = api.post("/api/v1/labels", {"key": "tier", "value": "web"}, format="json")

    assert response.status_code == 201
    assert len(calls) == 2
    label = Label.objects.get(organization=org, key="tier")
    assert (
        AuditEntry.objects.filter(event=events.RESOURCE_CREATE, object_id=str(label.pk)).count()
        == 1
    )


def test_a_write_that_keeps_losing_is_a_503_with_retry_after_and_changes_nothing(
    api, org, monkeypatch
):
    _losing(100, monkeypatch)
    api.raise_request_exception = False

    response = api.post("/api/v1/labels", {"key": "tier", "value": "web"}, format="json")

    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.json()["code"] == "busy"
    assert not Label.objects.filter(organization=org, key="tier").exists()

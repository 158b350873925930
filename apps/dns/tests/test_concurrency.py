"""Record-set writes of one domain against the real PostgreSQL, each in its own thread and
connection: writes of different names go on side by side; writes of one name still queue, so
uniqueness and the CNAME rule hold."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from apps.core.api.errors import APIError
from apps.dns import services
from apps.dns.models import RecordSet
from apps.dns.tests.factories import DomainFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _hold_open(write, holding: threading.Event, release: threading.Event) -> threading.Thread:
    def run() -> None:
        try:
            with transaction.atomic():
                write()
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def _with_lock_timeout(write):
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '500ms'")
        return write()


def test_a_record_set_write_does_not_wait_for_another_name_in_the_same_domain(org):
    domain = DomainFactory(organization=org)
    holding, release = threading.Event(), threading.Event()
    thread = _hold_open(
        lambda: services.record_set_create(domain=domain, name="a", type="A", values=["192.0.2.1"]),
        holding,
        release,
    )
    try:
        assert holding.wait(10)
        record = _with_lock_timeout(
            lambda: services.record_set_create(
                domain=domain, name="b", type="A", values=["192.0.2.2"]
            )
        )
        _with_lock_timeout(
            lambda: services.record_set_update(record_set=record, changes={"ttl": 120})
        )
        _with_lock_timeout(lambda: services.record_set_delete(record_set=record))
    finally:
        release.set()
        thread.join(10)

    assert set(RecordSet.objects.filter(domain=domain).values_list("name", flat=True)) == {"a"}


def test_a_cname_and_an_address_racing_for_one_name_never_both_win(org):
    domain = DomainFactory(organization=org)
    for round_ in range(4):
        name = f"www{round_}"
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def write(rtype: str, values: list[str], name=name, barrier=barrier, outcomes=outcomes):
            try:
                barrier.wait()
                with transaction.atomic():
                    services.record_set_create(domain=domain, name=name, type=rtype, values=values)
                outcomes.append("created")
            except APIError as exc:
                outcomes.append(exc.error_code)
            finally:
                connection.close()

        threads = [
            threading.Thread(target=write, args=("CNAME", ["target.example.net"])),
            threading.Thread(target=write, args=("A", ["192.0.2.9"])),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)

        assert sorted(outcomes) == ["cname_conflict", "created"]
        assert RecordSet.objects.filter(domain=domain, name=name).count() == 1

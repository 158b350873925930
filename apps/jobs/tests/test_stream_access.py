"""An open live log stream keeps checking that its viewer may still read the logs: revoking the
key, disabling the user or demoting them to viewer ends it within
JOB_LOG_STREAM_REAUTHORIZE_SECONDS. Driven through Django's ASGI handler (AsyncClient), on the
real database and Redis; and a stream that is never iterated gives its slot back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import AsyncClient

from apps.accounts.models import APIKey, User
from apps.accounts.services import api_key_create_for_org, api_key_create_for_user, api_key_revoke
from apps.jobs.models import JobLog, JobRun
from apps.jobs.tests.support import server_being_bootstrapped
from apps.orgs.models import Membership
from apps.orgs.services import membership_upsert

pytestmark = pytest.mark.django_db(transaction=True)

RECHECK = 0.5


@pytest.fixture
def running_server(org):  # type: ignore[no-untyped-def]
    return server_being_bootstrapped(org)


def _line(job: JobRun, text: str) -> None:
    JobLog.objects.create(
        job=job,
        organization_id=job.organization_id,
        subject_type=job.subject_type,
        subject_id=job.subject_id,
        stream="stdout",
        chunk=text,
    )


async def _in_thread(fn: Callable[[], Any]) -> None:
    """Run `fn` on a worker thread, closing the connection it opened (the database is dropped
    at the end of the session)."""

    def run() -> None:
        try:
            fn()
        finally:
            connection.close()

    await asyncio.to_thread(run)


def _follow(
    path: str,
    headers: dict[str, str],
    job: JobRun,
    change: Callable[[], Any],
    client: AsyncClient | None = None,
) -> str:
    """Open the stream, see a line arrive, apply `change`, and return everything received
    until the stream closed (fails if it is still open 5 s after the change)."""

    async def scenario() -> str:
        response = await (client or AsyncClient()).get(path, headers=headers)
        assert response.status_code == 200, response.content
        received = ""
        chunks = response.streaming_content.__aiter__()
        try:
            await _in_thread(lambda: _line(job, "before\n"))
            while "before" not in received:
                try:
                    received += (await asyncio.wait_for(anext(chunks), 5)).decode()
                except TimeoutError:
                    raise AssertionError(f"no line: {received!r}") from None
            await _in_thread(change)
            deadline = time.monotonic() + 5
            while True:
                try:
                    chunk = await asyncio.wait_for(anext(chunks), deadline - time.monotonic())
                except StopAsyncIteration:
                    return received
                except TimeoutError:
                    raise AssertionError(
                        f"stream still open 5 s after the change: {received!r}"
                    ) from None
                received += chunk.decode()
        finally:
            await chunks.aclose()
            await asyncio.sleep(0.2)  # the slot's release goes out before the loop closes

    return asyncio.run(scenario())


@pytest.fixture
def short_recheck(settings):  # type: ignore[no-untyped-def]
    settings.JOB_LOG_STREAM_REAUTHORIZE_SECONDS = RECHECK
    settings.JOB_LOG_STREAM_KEEPALIVE_SECONDS = 60.0


def test_a_stream_whose_viewer_keeps_access_follows_new_lines_past_several_rechecks(
    org, member, running_server, short_recheck
):
    server, job = running_server
    headers = {"X-API-KEY": api_key_create_for_user(user=member).plain, "X-Org-ID": str(org.pk)}

    async def scenario() -> str:
        response = await AsyncClient().get(
            f"/api/v1/servers/{server.pk}/logs/stream", headers=headers
        )
        chunks = response.streaming_content.__aiter__()
        received = ""
        try:
            await asyncio.sleep(RECHECK * 4)
            await _in_thread(lambda: _line(job, "later\n"))
            while "later" not in received:
                received += (await asyncio.wait_for(anext(chunks), 5)).decode()
            return received
        finally:
            await chunks.aclose()
            await asyncio.sleep(0.2)  # the slot's release goes out before the loop closes

    received = asyncio.run(scenario())
    assert "event: denied" not in received


def test_a_stream_ends_soon_after_the_viewers_api_key_is_revoked(
    org, member, running_server, short_recheck
):
    server, job = running_server
    created = api_key_create_for_user(user=member)
    headers = {"X-API-KEY": created.plain, "X-Org-ID": str(org.pk)}
    received = _follow(
        f"/api/v1/servers/{server.pk}/logs/stream",
        headers,
        job,
        lambda: api_key_revoke(key=APIKey.objects.get(pk=created.key.pk)),
    )
    assert "event: denied" in received
    assert "event: end" not in received  # the job has not ended


def test_a_stream_ends_soon_after_the_viewer_is_demoted_to_viewer(
    org, owner, member, running_server, short_recheck
):
    server, job = running_server
    headers = {"X-API-KEY": api_key_create_for_user(user=member).plain, "X-Org-ID": str(org.pk)}
    received = _follow(
        f"/api/v1/servers/{server.pk}/logs/stream",
        headers,
        job,
        lambda: membership_upsert(
            organization=org, user_id=member.pk, role="viewer", acting_role="owner"
        ),
    )
    assert "event: denied" in received


def test_a_stream_ends_soon_after_its_org_key_is_revoked(org, running_server, short_recheck):
    server, job = running_server
    created = api_key_create_for_org(organization=org)
    headers = {"X-ORG-KEY": created.plain, "X-ORG-SECRET": created.secret}
    received = _follow(
        f"/api/v1/servers/{server.pk}/logs/stream",
        headers,
        job,
        lambda: api_key_revoke(key=APIKey.objects.get(pk=created.key.pk)),
    )
    assert "event: denied" in received


@pytest.mark.parametrize("change", ["user disabled", "demoted to viewer"])
def test_a_console_stream_ends_soon_after_the_user_is_disabled_or_demoted(
    change, org, member, running_server, short_recheck
):
    server, job = running_server
    client = AsyncClient()
    client.force_login(member)
    changes = {
        "user disabled": lambda: User.objects.filter(pk=member.pk).update(is_disabled=True),
        "demoted to viewer": lambda: Membership.objects.filter(
            user=member, organization=org
        ).update(role="viewer"),
    }
    received = _follow(f"/admin/jobs/jobrun/{job.pk}/log/stream/", {}, job, changes[change], client)
    assert "event: denied" in received

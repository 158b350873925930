"""The contract's /admin/archer/* routes, answered from job records, platform admins only."""

from __future__ import annotations

import pytest

from apps.accounts.tests.factories import UserFactory
from apps.infrastructure.tests.factories import ServerFactory
from apps.jobs import services
from apps.jobs.models import JobRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(client_for):
    return client_for(UserFactory(primary_email="root@autoglue.example", is_admin=True))


def _job(org, **fields) -> JobRun:
    server = ServerFactory(organization=org)
    return JobRun.objects.create(
        kind="bootstrap_bastion",
        queue="ssh",
        organization=org,
        subject_type="server",
        subject_id=server.pk,
        **fields,
    )


def test_jobs_are_listed_filtered_and_paged_in_the_contract_shape(root, org):
    failed = _job(org, status="failed", error="ssh refused")
    _job(org, status="succeeded")

    body = root.get("/api/v1/admin/archer/jobs?status=failed&page_size=1").json()

    assert (body["total"], body["page"], body["page_size"]) == (1, 1, 1)
    item = body["items"][0]
    assert item["id"] == str(failed.pk)
    assert (item["type"], item["queue"], item["last_error"]) == (
        "bootstrap_bastion",
        "ssh",
        "ssh refused",
    )
    assert root.get("/api/v1/admin/archer/jobs?q=refused").json()["total"] == 1
    assert root.get("/api/v1/admin/archer/jobs?status=bogus").status_code == 400


def test_members_and_org_keys_cannot_reach_job_administration(api, org, org_key_client):
    for client in (api, org_key_client(org)):
        assert client.get("/api/v1/admin/archer/jobs").status_code == 403
        assert client.get("/api/v1/admin/archer/queues").status_code == 403


def test_a_failed_job_is_retried_and_a_queued_one_canceled(root, org):
    failed = _job(org, status="failed")
    queued = _job(org)

    retried = root.post(f"/api/v1/admin/archer/jobs/{failed.pk}/retry")
    canceled = root.post(f"/api/v1/admin/archer/jobs/{queued.pk}/cancel")

    assert retried.status_code == 200 and retried.json()["status"] == "queued"
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
    assert root.post(f"/api/v1/admin/archer/jobs/{queued.pk}/cancel").status_code == 400
    assert root.post(f"/api/v1/admin/archer/jobs/{queued.pk}/retry").status_code == 200


def test_unknown_job_ids_are_404_well_formed_or_not_as_archer_answered(root):
    unknown = root.post("/api/v1/admin/archer/jobs/00000000-0000-0000-0000-000000000000/retry")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
    malformed = root.post("/api/v1/admin/archer/jobs/nope/cancel")
    assert (malformed.status_code, malformed.json()["code"]) == (404, "not_found")


def test_a_platform_job_is_enqueued_by_type_and_tenant_kinds_are_refused(root):
    created = root.post(
        "/api/v1/admin/archer/jobs", {"type": "bastion_sweep", "payload": {}}, format="json"
    )
    refused = root.post("/api/v1/admin/archer/jobs", {"type": "cluster_action"}, format="json")

    assert created.status_code == 200
    assert (created.json()["type"], created.json()["status"]) == ("bastion_sweep", "queued")
    assert refused.status_code == 400 and "bastion_sweep" in refused.json()["message"]


def test_queues_count_jobs_by_state(root, org):
    _job(org, status="failed")
    _job(org)

    queues = {q["name"]: q for q in root.get("/api/v1/admin/archer/queues").json()}

    assert queues["ssh"] == {"name": "ssh", "pending": 1, "running": 0, "failed": 1, "scheduled": 0}
    assert {"default", "maintenance"} <= set(queues)


def test_a_queued_job_whose_subject_is_busy_cannot_be_retried_twice(root, org):
    first = _job(org, status="failed")
    JobRun.objects.create(
        kind="bootstrap_bastion",
        queue="ssh",
        organization=org,
        subject_type="server",
        subject_id=first.subject_id,
    )

    with pytest.raises(services.JobStateError):
        services.job_retry(job=first)
    assert root.post(f"/api/v1/admin/archer/jobs/{first.pk}/retry").status_code == 400


def test_odd_numbers_in_query_parameters_are_400_not_500(root, api, org):
    from apps.infrastructure.tests.factories import ServerFactory as Servers

    server = Servers(organization=org)
    assert root.get("/api/v1/admin/archer/jobs?page=%C2%B2").status_code == 400
    assert root.get("/api/v1/admin/archer/jobs?page=" + "9" * 5000).status_code == 400
    assert api.get(f"/api/v1/servers/{server.pk}/logs?after=%C2%B2").status_code == 400
    assert api.get(f"/api/v1/servers/{server.pk}/logs?limit=0").status_code == 400


def test_a_backup_started_through_the_admin_api_cannot_pass_itself_off_as_scheduled(root, settings):
    from apps.jobs.models import ScheduleFirstRun

    settings.JOBS_PUBLISH = False
    created = root.post(
        "/api/v1/admin/archer/jobs",
        {"type": "backup", "payload": {"scheduled": True, "schedule": "maintenance-backup"}},
        format="json",
    )
    assert created.status_code == 200
    job = JobRun.objects.get(pk=created.json()["id"])
    assert "scheduled" not in job.payload and "schedule" not in job.payload

    services.job_finish(job=services.job_claim(job_id=job.pk), status="failed", error="boom")
    assert not ScheduleFirstRun.objects.filter(name="maintenance-backup").exists()

"""No metric label carries an organization, cluster, user, id, path or error text: every family
the web serves is scanned after traffic that would leak them if a label did (ids in paths,
refused credentials, rate-limit refusals, failing jobs)."""

from __future__ import annotations

import re
import uuid

import pytest
from django.urls import get_resolver
from prometheus_client.parser import text_string_to_metric_families

from apps.core import metrics
from apps.jobs import services
from apps.jobs.models import JobRun
from apps.observability.middleware import route_template

pytestmark = pytest.mark.django_db

TOKEN = "CANARY-label-scan-token"
FORBIDDEN_NAMES = {
    "org",
    "organization",
    "organization_id",
    "org_id",
    "cluster",
    "cluster_id",
    "user",
    "user_id",
    "email",
    "id",
    "job_id",
    "path",
    "url",
    "error",
    "message",
    "reason",
    "ip",
    "client_ip",
    "host",
    "zone",
    "bucket",
    "key",
}
UNBOUNDED_VALUE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # a UUID
    r"|@"  # an email
    r"|\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b"  # an IPv4 address
    r"|\d{4,}"  # a numeric id
    r"|CANARY",
    re.I,
)
# Labels whose values are a fixed vocabulary.
VOCABULARY = {
    "method": metrics.HTTP_METHODS | {"other"},
    # HTTP status classes, job statuses.
    "status": {"1xx", "2xx", "3xx", "4xx", "5xx", "other", *JobRun.Status.values},
    "outcome": {*JobRun.Status.values, "ok", "error", "throttled", "host_key_mismatch"}
    | {"auth_failed", "unreachable"},
}


def _patterns() -> set[str]:
    """Every route the URL map can resolve to, as the middleware names them."""
    found: set[str] = set()

    def walk(resolver, prefix: str) -> None:
        for entry in resolver.url_patterns:
            route = prefix + str(entry.pattern)
            if hasattr(entry, "url_patterns"):
                walk(entry, route)
            else:
                found.add(route_template(route))

    walk(get_resolver(), "")
    # The metrics live as long as the test process: earlier tests that swap in a test-only URL
    # map (pytest.mark.urls) leave their routes in the counters, named just as safely.
    for urlconf in ("apps.core.tests.urls", "apps.orgs.tests.tenancy_urls"):
        walk(get_resolver(urlconf), "")
    return found


def test_no_label_names_a_tenant_object_or_carries_an_unbounded_value(
    client, api, monkeypatch, settings, org
):
    monkeypatch.setenv("METRICS_TOKEN", TOKEN)
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    settings.JOBS_PUBLISH = False
    # Traffic that would leak: ids in paths, unknown paths, a refused key, a refusal by limit.
    api.get(f"/api/v1/servers/{uuid.uuid4()}")
    api.get(f"/api/v1/clusters/{uuid.uuid4()}")
    client.get(f"/api/v1/no-such-route/{uuid.uuid4()}")
    client.get("/api/v1/servers", HTTP_X_API_KEY="CANARY-not-a-key-12345")
    client.get("/metrics", HTTP_AUTHORIZATION="Bearer CANARY-wrong")
    # A failing job with error text, recorded as the runner does.
    job = services.job_enqueue(kind="vacuum")
    job = services.job_claim(job_id=job.pk)
    services.job_finish(job=job, status=JobRun.Status.FAILED, error=f"boom {uuid.uuid4()}")
    metrics.jobs_finished.labels("vacuum", "failed").inc()
    metrics.rate_limit_refusals.labels("ip").inc()

    text = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    families = list(text_string_to_metric_families(text))
    patterns = _patterns()

    ours = [f for f in families if f.name.startswith("autoglue_")]
    assert len(ours) >= 15
    for family in ours:
        for sample in family.samples:
            assert not FORBIDDEN_NAMES & set(sample.labels), (sample.name, sample.labels)
            for name, value in sample.labels.items():
                if name in VOCABULARY:
                    assert value in VOCABULARY[name], (sample.name, name, value)
                elif name == "route":
                    assert value in patterns | {"unmatched"}, value
                elif name not in {"le", "version", "commit"}:
                    assert not UNBOUNDED_VALUE.search(value), (sample.name, name, value)
    routes = {s.labels["route"] for f in ours for s in f.samples if "route" in s.labels}
    assert not any("no-such-route" in route for route in routes)
    assert "/api/v1/servers/{pk}" in routes

"""Fixtures for the DNS tests: moto in server mode behind a counting proxy, hosted zones, and a
Route 53 credential of the organization."""

from __future__ import annotations

import uuid

import boto3
import pytest

from apps.dns.tests.route53_proxy import Route53Proxy
from apps.infrastructure import registry
from apps.infrastructure.tests.factories import CredentialFactory
from apps.jobs.tests.support import run_queued


class Route53World:
    """The test's view of Route 53: a boto3 client straight to moto (for setting up zones and
    looking at them) and the proxy our code goes through (for counting and throttling)."""

    def __init__(self, moto_url: str, proxy: Route53Proxy) -> None:
        self.proxy = proxy
        self.client = boto3.client(
            "route53",
            endpoint_url=moto_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def create_zone(self, name: str) -> str:
        answer = self.client.create_hosted_zone(Name=name, CallerReference=uuid.uuid4().hex)
        return answer["HostedZone"]["Id"].rsplit("/", 1)[-1]

    def rrsets(self, zone_id: str) -> dict[tuple[str, str], dict]:
        found: dict[tuple[str, str], dict] = {}
        paginator = self.client.get_paginator("list_resource_record_sets")
        for page in paginator.paginate(HostedZoneId=zone_id):
            for item in page["ResourceRecordSets"]:
                found[(item["Name"].rstrip(".").lower(), item["Type"])] = item
        return found

    def values(self, zone_id: str, name: str, rtype: str) -> list[str] | None:
        item = self.rrsets(zone_id).get((name, rtype))
        return None if item is None else [r["Value"] for r in item["ResourceRecords"]]

    def put(self, zone_id: str, name: str, rtype: str, values: list[str], ttl: int = 300) -> None:
        self.client.change_resource_record_sets(
            HostedZoneId=zone_id,
            ChangeBatch={
                "Changes": [
                    {
                        "Action": "UPSERT",
                        "ResourceRecordSet": {
                            "Name": name,
                            "Type": rtype,
                            "TTL": ttl,
                            "ResourceRecords": [{"Value": v} for v in values],
                        },
                    }
                ]
            },
        )


@pytest.fixture
def route53(moto_server, monkeypatch):
    proxy = Route53Proxy(moto_server.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
    # Retries in tests: quick, and enough to ride out a few injected throttles.
    monkeypatch.setattr("django.conf.settings.DNS_ROUTE53_RETRY_MODE", "standard")
    yield Route53World(moto_server.url, proxy)
    proxy.close()


@pytest.fixture
def route53_credential(org):
    return CredentialFactory(
        organization=org,
        scope_kind="service",
        scope={"service": "route53"},
        scope_fingerprint=registry.scope_fingerprint({"service": "route53"}),
    )


@pytest.fixture
def zone(route53):
    """The hosted zone `example.com` on moto."""
    return route53.create_zone("example.com")


@pytest.fixture
def ready_domain(api, route53, zone, route53_credential):
    """The organization's domain `example.com`, created through the API and reconciled (its
    zone found), with the proxy's counts reset."""
    from apps.dns.models import Domain

    response = api.post(
        "/api/v1/dns/domains",
        {"domain_name": "Example.COM.", "credential_id": str(route53_credential.pk)},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["status"] == "pending"
    assert run_reconciles() == ["succeeded"]
    found = Domain.objects.get(pk=response.json()["id"])
    assert found.status == Domain.Status.READY and found.zone_id == zone
    route53.proxy.reset_counts()
    return found


def run_reconciles() -> list[str]:
    """Run every queued DNS job in this process, as a worker would."""
    return run_queued("dns_reconcile") + run_queued("dns_purge")

"""The Route 53 client: boto3 with the bound credential's keys and nothing else.

Credentials come only from the domain's credential (never the environment, an instance profile
or a shared config file). The endpoint is boto3's own choice, so the standard overrides apply
unchanged: `AWS_ENDPOINT_URL`, or the Route 53-only `AWS_ENDPOINT_URL_ROUTE_53` (botocore's
spelling, from the service id "Route 53"). Throttling (`Throttling`, `PriorRequestNotComplete`)
is retried by botocore's retry modes with exponential backoff and jitter; "adaptive" also slows
the client down after a throttle.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from apps.core import metrics
from apps.dns.names import decode_route53_name
from apps.infrastructure.models import Credential

# Route 53 answers at most 300 record sets per ListResourceRecordSets page.
LIST_PAGE_SIZE = 300


class Route53Error(Exception):
    """A Route 53 call failed; the message has the AWS error code and text, never a secret."""

    def __init__(self, message: str, *, code: str = "") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class RRset:
    """A record set as Route 53 holds it. `name` is the full name, lower case, without the
    trailing dot; `values` are as returned. Alias and routing-policy record sets carry `raw`
    and are never changed by Autoglue."""

    name: str
    type: str
    ttl: int | None
    values: tuple[str, ...]
    special: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.type)

    def to_aws(self) -> dict[str, Any]:
        return {
            "Name": self.name + ".",
            "Type": self.type,
            "TTL": self.ttl,
            "ResourceRecords": [{"Value": value} for value in self.values],
        }


def _describe(exc: Exception) -> tuple[str, str]:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "")) or "Error"
        return code, f"Route 53 {code}: {error.get('Message', '')}".strip()
    return type(exc).__name__, f"Route 53 unreachable: {type(exc).__name__}"


class Route53Client:
    """The four Route 53 calls Autoglue makes, for one credential."""

    def __init__(self, *, access_key_id: str, secret_access_key: str, region: str = "") -> None:
        # An endpoint may echo request details in its error text; ours never repeats the keys.
        self._secrets = tuple(key for key in (access_key_id, secret_access_key) if key)
        session = boto3.session.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            region_name=region or settings.DNS_ROUTE53_REGION,
        )
        self._client = metrics.instrument_aws(
            session.client(
                "route53",
                config=Config(
                    retries={
                        "mode": settings.DNS_ROUTE53_RETRY_MODE,
                        "max_attempts": settings.DNS_ROUTE53_MAX_ATTEMPTS,
                    },
                    connect_timeout=10,
                    read_timeout=60,
                ),
            ),
            "route53",
        )

    @classmethod
    def for_credential(cls, credential: Credential) -> Route53Client:
        secret = json.loads(credential.secret)
        return cls(
            access_key_id=secret["access_key_id"],
            secret_access_key=secret["secret_access_key"],
            region=secret.get("region") or credential.region,
        )

    def _call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return getattr(self._client, operation)(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            code, message = _describe(exc)
            for secret in self._secrets:
                message = message.replace(secret, "[redacted]")
            raise Route53Error(message, code=code) from None

    def find_zone(self, domain_name: str) -> tuple[str, str]:
        """The public hosted zone named exactly `domain_name`: (id without `/hostedzone/`,
        name). One ListHostedZonesByName call."""
        answer = self._call("list_hosted_zones_by_name", DNSName=domain_name, MaxItems="10")
        matches = [
            zone
            for zone in answer.get("HostedZones", [])
            if decode_route53_name(zone["Name"]) == domain_name
            and not zone.get("Config", {}).get("PrivateZone", False)
        ]
        if not matches:
            raise Route53Error(f"no public hosted zone named {domain_name} for this credential")
        if len(matches) > 1:
            raise Route53Error(
                f"{len(matches)} public hosted zones are named {domain_name}; set zone_id"
            )
        return matches[0]["Id"].rsplit("/", 1)[-1], domain_name

    def zone_name(self, zone_id: str) -> str:
        """The hosted zone's name (GetHostedZone), which also proves the credential reaches it."""
        answer = self._call("get_hosted_zone", Id=zone_id)
        return decode_route53_name(answer["HostedZone"]["Name"])

    def list_rrsets(self, zone_id: str) -> Iterator[RRset]:
        """Every record set of the zone, in pages of 300 (no per-record lookups)."""
        kwargs: dict[str, Any] = {"HostedZoneId": zone_id, "MaxItems": str(LIST_PAGE_SIZE)}
        while True:
            page = self._call("list_resource_record_sets", **kwargs)
            for item in page.get("ResourceRecordSets", []):
                special = any(
                    key in item
                    for key in (
                        "AliasTarget",
                        "SetIdentifier",
                        "TrafficPolicyInstanceId",
                    )
                )
                yield RRset(
                    name=decode_route53_name(item["Name"]),
                    type=item["Type"],
                    ttl=item.get("TTL"),
                    values=tuple(r["Value"] for r in item.get("ResourceRecords", [])),
                    special=special,
                )
            if not page.get("IsTruncated"):
                return
            kwargs["StartRecordName"] = page["NextRecordName"]
            kwargs["StartRecordType"] = page["NextRecordType"]
            if page.get("NextRecordIdentifier"):
                kwargs["StartRecordIdentifier"] = page["NextRecordIdentifier"]
            else:
                kwargs.pop("StartRecordIdentifier", None)

    def change(self, zone_id: str, changes: Sequence[dict[str, Any]]) -> str:
        """Apply one batch atomically (ChangeResourceRecordSets); returns the change id."""
        answer = self._call(
            "change_resource_record_sets",
            HostedZoneId=zone_id,
            ChangeBatch={"Comment": "autoglue", "Changes": list(changes)},
        )
        return str(answer.get("ChangeInfo", {}).get("Id", ""))

"""Request and response shapes of the DNS routes (the contract's dto.* schemas, and the plan
and settings shapes beyond it). Requests are parsed here for their types only; the services
normalize and validate names and values."""

from __future__ import annotations

from rest_framework import serializers

from apps.core.api.serializers import FastReadMixin, GoShapeMixin
from apps.dns.models import DNSPlan, DNSSettings, Domain, RecordSet

STATUSES = ["pending", "provisioning", "ready", "failed"]


class DomainSerializer(FastReadMixin, serializers.ModelSerializer):
    """dto.DomainResponse (also a cluster's nested `captain_domain`)."""

    organization_id = serializers.UUIDField(read_only=True)
    credential_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = Domain
        fields = [
            "id",
            "organization_id",
            "domain_name",
            "zone_id",
            "status",
            "last_error",
            "credential_id",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class DomainCreateSerializer(serializers.Serializer):
    """dto.CreateDomainRequest."""

    domain_name = serializers.CharField(max_length=253, trim_whitespace=False)
    credential_id = serializers.CharField()
    zone_id = serializers.CharField(max_length=128, required=False, allow_blank=True)


class DomainUpdateSerializer(serializers.Serializer):
    """dto.UpdateDomainRequest."""

    domain_name = serializers.CharField(max_length=253, required=False)
    credential_id = serializers.CharField(required=False)
    zone_id = serializers.CharField(max_length=128, required=False, allow_blank=True)
    status = serializers.ChoiceField(choices=STATUSES, required=False)


class RecordSetSerializer(GoShapeMixin, FastReadMixin, serializers.ModelSerializer):
    """dto.RecordSetResponse (`ttl` left out when unset, as the original's `*int`); also a
    cluster's nested `control_plane_record_set`."""

    omit_if_none = ("ttl",)
    domain_id = serializers.UUIDField(read_only=True)
    # As the client sent it (relative or FQDN, as the provider documents), as values are.
    name = serializers.CharField(source="name_for_client", read_only=True)
    values = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = RecordSet
        fields = [
            "id",
            "domain_id",
            "name",
            "type",
            "ttl",
            "values",
            "fingerprint",
            "status",
            "last_error",
            "owner",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class RecordSetCreateSerializer(serializers.Serializer):
    """dto.CreateRecordSetRequest."""

    name = serializers.CharField(max_length=253, allow_blank=True, trim_whitespace=False)
    type = serializers.CharField(max_length=10)
    ttl = serializers.IntegerField(min_value=1, max_value=86400, required=False, allow_null=True)
    values = serializers.ListField(
        child=serializers.CharField(max_length=1024, trim_whitespace=False), required=False
    )


class RecordSetUpdateSerializer(serializers.Serializer):
    """dto.UpdateRecordSetRequest."""

    name = serializers.CharField(
        max_length=253, allow_blank=True, required=False, trim_whitespace=False
    )
    type = serializers.CharField(max_length=10, required=False)
    ttl = serializers.IntegerField(min_value=1, max_value=86400, required=False, allow_null=True)
    values = serializers.ListField(
        child=serializers.CharField(max_length=1024, trim_whitespace=False), required=False
    )
    status = serializers.ChoiceField(choices=STATUSES, required=False)


class DNSSettingsSerializer(serializers.ModelSerializer):
    """The organization's DNS settings (beyond the contract)."""

    organization_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = DNSSettings
        fields = ["organization_id", "require_plan"]


class PlanChangeSerializer(serializers.Serializer):
    """One planned change: `action` create/update/delete (or `conflict`: refused), `kind`
    record/marker/guard, the record set as it will be, `previous` for updates, and the
    ownership verdict `owner` (autoglue: Autoglue's to change; external: left alone)."""

    action = serializers.ChoiceField(choices=["create", "update", "delete", "conflict"])
    kind = serializers.ChoiceField(choices=["record", "marker", "guard"])
    name = serializers.CharField()
    type = serializers.CharField()
    ttl = serializers.IntegerField(required=False, allow_null=True)
    values = serializers.ListField(child=serializers.CharField(), required=False)
    previous = serializers.DictField(required=False)
    owner = serializers.ChoiceField(choices=["autoglue", "external"])
    record_set_ids = serializers.ListField(child=serializers.UUIDField())
    reason = serializers.CharField(required=False)


class DNSPlanSerializer(serializers.ModelSerializer):
    """A reviewable plan (beyond the contract)."""

    domain_id = serializers.UUIDField(read_only=True)
    changes = PlanChangeSerializer(many=True, read_only=True)
    summary = serializers.DictField(child=serializers.IntegerField(), read_only=True)

    class Meta:
        model = DNSPlan
        fields = [
            "id",
            "domain_id",
            "status",
            "summary",
            "changes",
            "job_id",
            "error",
            "created_at",
            "applied_at",
        ]
        read_only_fields = fields

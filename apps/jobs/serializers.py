"""Shapes of the job routes: the contract's dto.Job / dto.PageJob / dto.QueueInfo."""

from __future__ import annotations

from rest_framework import serializers

from apps.jobs.models import JobRun


class JobSerializer(serializers.ModelSerializer):
    """dto.Job, answered from a job run. `type` and `queue` keep the original's meaning (the
    job's kind and the queue it ran on); `run_at` is when it was (or will be) sent."""

    type = serializers.CharField(source="kind", read_only=True)
    created_at = serializers.DateTimeField(source="queued_at", read_only=True)
    last_error = serializers.CharField(source="error", read_only=True)
    run_at = serializers.DateTimeField(source="sent_at", read_only=True)
    subject_type = serializers.CharField(read_only=True)
    subject_id = serializers.UUIDField(read_only=True)
    organization_id = serializers.UUIDField(read_only=True)

    class Meta:
        model = JobRun
        fields = [
            "id",
            "type",
            "queue",
            "status",
            "attempts",
            "max_attempts",
            "created_at",
            "updated_at",
            "last_error",
            "run_at",
            "payload",
            "subject_type",
            "subject_id",
            "organization_id",
            "started_at",
            "finished_at",
            "result",
        ]
        read_only_fields = fields


class EnqueueSerializer(serializers.Serializer):
    """dto.EnqueueRequest: `type` is a job kind, `payload` its arguments (see the kind)."""

    type = serializers.CharField(max_length=64)
    queue = serializers.CharField(max_length=32, required=False, allow_blank=True)
    payload = serializers.JSONField(required=False, default=dict)
    run_at = serializers.DateTimeField(required=False, allow_null=True)

    def validate_payload(self, value: object) -> object:
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be an object")
        return value


class QueueInfoSerializer(serializers.Serializer):
    name = serializers.CharField()
    pending = serializers.IntegerField()
    running = serializers.IntegerField()
    failed = serializers.IntegerField()
    scheduled = serializers.IntegerField()


class PageJobSerializer(serializers.Serializer):
    items = JobSerializer(many=True)
    total = serializers.IntegerField()
    page = serializers.IntegerField()
    page_size = serializers.IntegerField()


class JobLogItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    stream = serializers.ChoiceField(choices=["stdout", "stderr", "system"])
    chunk = serializers.CharField()
    created_at = serializers.DateTimeField()


class JobLogPageSerializer(serializers.Serializer):
    """`{items, next_cursor, done}` of the log routes."""

    items = JobLogItemSerializer(many=True)
    next_cursor = serializers.IntegerField()
    done = serializers.BooleanField()

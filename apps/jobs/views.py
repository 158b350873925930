"""The contract's job administration routes (/admin/archer/*), platform admins only, answered
from the job records. The path keeps the original's name so its clients work unchanged."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status as http
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.errors import bad_request, not_found
from apps.core.api.transactions import AtomicWritesMixin
from apps.core.permissions import IsPlatformAdmin
from apps.core.tenancy import parse_uuid
from apps.jobs import admin_jobs, registry, services
from apps.jobs.api import int_param
from apps.jobs.models import JobRun
from apps.jobs.serializers import (
    EnqueueSerializer,
    JobSerializer,
    PageJobSerializer,
    QueueInfoSerializer,
)

_STATUSES = {choice for choice, _ in JobRun.Status.choices} | {"scheduled"}


class JobListView(AtomicWritesMixin, APIView):
    permission_classes = [IsPlatformAdmin]

    @extend_schema(
        operation_id="AdminListArcherJobs",
        parameters=[
            OpenApiParameter("status", str),
            OpenApiParameter("queue", str),
            OpenApiParameter("q", str),
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int),
        ],
        responses=PageJobSerializer,
    )
    def get(self, request: Request) -> Response:
        jobs = JobRun.objects.all()  # platform admins see every organization's jobs
        state = request.query_params.get("status", "").strip()
        if state:
            if state not in _STATUSES:
                raise bad_request("invalid_status", f"status: must be one of {sorted(_STATUSES)}")
            if state == "scheduled":
                jobs = jobs.filter(status=JobRun.Status.QUEUED, sent_at__gt=timezone.now())
            else:
                jobs = jobs.filter(status=state)
        queue = request.query_params.get("queue", "").strip()
        if queue:
            jobs = jobs.filter(queue=queue)
        text = request.query_params.get("q", "").strip()[:200]
        if text:
            match = Q(kind__icontains=text) | Q(queue__icontains=text) | Q(error__icontains=text)
            with contextlib.suppress(Exception):  # free text that is not an id
                match |= Q(pk=parse_uuid(text)) | Q(subject_id=parse_uuid(text))
            jobs = jobs.filter(match)
        page = int_param(request, "page", 1, 1, 1_000_000)
        size = int_param(request, "page_size", 25, 1, 100)
        total = jobs.count()
        rows = jobs.order_by("-queued_at")[(page - 1) * size : page * size]
        body = {
            "items": JobSerializer(rows, many=True).data,
            "total": total,
            "page": page,
            "page_size": size,
        }
        return Response(body)

    @extend_schema(
        operation_id="AdminEnqueueArcherJob", request=EnqueueSerializer, responses=JobSerializer
    )
    def post(self, request: Request) -> Response:
        data = EnqueueSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run_at = data.validated_data.get("run_at")
        if run_at is not None and run_at > timezone.now() + timedelta(hours=1):
            raise bad_request("invalid_run_at", "run_at: at most one hour ahead")
        job = admin_jobs.enqueue(
            kind=data.validated_data["type"],
            payload=data.validated_data["payload"],
            run_at=run_at,
        )
        return Response(JobSerializer(job).data, status=http.HTTP_200_OK)


def _job(job_id: str) -> JobRun:
    # Archer's job ids were free strings: the original answered any unknown one, well-formed or
    # not, 404 `not_found`. Ours are UUIDs, so a malformed one names no job either.
    try:
        pk = uuid.UUID(job_id)
    except ValueError:
        pk = None
    job = JobRun.objects.filter(pk=pk).first() if pk is not None else None
    if job is None:
        raise not_found("not_found", "job not found")
    return job


class _JobTransitionView(AtomicWritesMixin, APIView):
    """POST /admin/archer/jobs/{id}/<transition>: a 400 names why the job's status refuses it."""

    permission_classes = [IsPlatformAdmin]
    refused_code = ""

    def transition(self, job: JobRun) -> JobRun:
        raise NotImplementedError

    def post(self, request: Request, id: str) -> Response:  # noqa: A002 - the contract's name
        try:
            job = self.transition(_job(id))
        except services.JobStateError as exc:
            raise bad_request(self.refused_code, str(exc)) from None
        return Response(JobSerializer(job).data)


@extend_schema_view(
    post=extend_schema(operation_id="AdminRetryArcherJob", request=None, responses=JobSerializer)
)
class JobRetryView(_JobTransitionView):
    refused_code = "not_retryable"

    def transition(self, job: JobRun) -> JobRun:
        return services.job_retry(job=job)


@extend_schema_view(
    post=extend_schema(operation_id="AdminCancelArcherJob", request=None, responses=JobSerializer)
)
class JobCancelView(_JobTransitionView):
    refused_code = "not_cancellable"

    def transition(self, job: JobRun) -> JobRun:
        return services.job_request_cancel(job=job)


class QueueListView(APIView):
    permission_classes = [IsPlatformAdmin]

    @extend_schema(operation_id="AdminListArcherQueues", responses=QueueInfoSerializer(many=True))
    def get(self, request: Request) -> Response:
        now = timezone.now()
        counts: dict[str, Mapping[str, Any]] = {
            row["queue"]: row
            for row in JobRun.objects.values("queue").annotate(
                pending=Count(
                    "id", filter=Q(status__in=["queued", "retrying"]) & ~Q(sent_at__gt=now)
                ),
                scheduled=Count("id", filter=Q(status="queued", sent_at__gt=now)),
                running=Count("id", filter=Q(status="running")),
                failed=Count("id", filter=Q(status="failed")),
            )
        }
        names = sorted(
            set(counts) | {registry.QUEUE_SSH, registry.QUEUE_MAINTENANCE, registry.QUEUE_DEFAULT}
        )
        body = [
            {
                "name": name,
                "pending": counts.get(name, {}).get("pending", 0),
                "running": counts.get(name, {}).get("running", 0),
                "failed": counts.get(name, {}).get("failed", 0),
                "scheduled": counts.get(name, {}).get("scheduled", 0),
            }
            for name in names
        ]
        return Response(body)

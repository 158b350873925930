"""Factories for the rows the sweepers work on (keys, refresh tokens, job runs and logs)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import factory
from django.utils import timezone

from apps.accounts.models import APIKey, RefreshToken
from apps.accounts.tests.factories import UserFactory
from apps.jobs.models import JobLog, JobRun


class APIKeyFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = APIKey

    scope = APIKey.Scope.ORG
    purpose = "org"
    name = factory.Sequence(lambda n: f"key {n}")
    public_id = factory.LazyFunction(lambda: uuid.uuid4().hex[:24])
    # Not a real hash: these keys are never presented.
    secret_hash = "not-a-real-hash"
    organization = None
    user = None


class RefreshTokenFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = RefreshToken

    user = factory.SubFactory(UserFactory)
    family_id = factory.LazyFunction(uuid.uuid4)
    digest = factory.LazyFunction(lambda: uuid.uuid4().hex * 2)
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=1))
    family_expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=30))


class JobRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobRun

    kind = "vacuum"
    queue = "maintenance"
    status = JobRun.Status.SUCCEEDED


class JobLogFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobLog

    job = factory.SubFactory(JobRunFactory)
    stream = JobLog.Stream.SYSTEM
    chunk = "line\n"

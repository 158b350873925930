import factory

from apps.jobs.models import JobRun


class JobRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = JobRun

    kind = "vacuum"
    queue = "maintenance"
    status = JobRun.Status.QUEUED

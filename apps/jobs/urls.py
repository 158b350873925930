"""Job administration routes, mounted under /api/v1."""

from django.urls import re_path

from apps.jobs import views

urlpatterns = [
    re_path(r"^admin/archer/jobs/?$", views.JobListView.as_view(), name="archer-jobs"),
    re_path(
        r"^admin/archer/jobs/(?P<id>[^/]+)/retry/?$",
        views.JobRetryView.as_view(),
        name="archer-job-retry",
    ),
    re_path(
        r"^admin/archer/jobs/(?P<id>[^/]+)/cancel/?$",
        views.JobCancelView.as_view(),
        name="archer-job-cancel",
    ),
    re_path(r"^admin/archer/queues/?$", views.QueueListView.as_view(), name="archer-queues"),
]

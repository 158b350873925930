"""API routes of the orgs app, mounted under /api/v1."""

from django.urls import re_path

from apps.orgs import views

_ID = r"(?P<org_id>[^/]+)"

urlpatterns = [
    re_path(r"^orgs/?$", views.OrgsView.as_view(), name="orgs"),
    re_path(rf"^orgs/{_ID}/?$", views.OrgDetailView.as_view(), name="org"),
    re_path(rf"^orgs/{_ID}/members/?$", views.MembersView.as_view(), name="org-members"),
    re_path(
        rf"^orgs/{_ID}/members/(?P<user_id>[^/]+)/?$", views.MemberView.as_view(), name="org-member"
    ),
    re_path(rf"^orgs/{_ID}/api-keys/?$", views.OrgAPIKeysView.as_view(), name="org-api-keys"),
    re_path(
        rf"^orgs/{_ID}/api-keys/(?P<key_id>[^/]+)/?$",
        views.OrgAPIKeyView.as_view(),
        name="org-api-key",
    ),
]

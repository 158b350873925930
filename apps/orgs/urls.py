"""API routes of the orgs app, mounted under /api/v1."""

urlpatterns: list = []

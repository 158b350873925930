"""API routes of the infrastructure app, mounted under /api/v1."""

urlpatterns: list = []

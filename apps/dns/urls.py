"""API routes of the dns app, mounted under /api/v1."""

urlpatterns: list = []

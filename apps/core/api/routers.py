"""The router every app registers its viewsets on: contract paths, trailing slash tolerated."""

from rest_framework.routers import SimpleRouter


class APIRouter(SimpleRouter):
    def __init__(self) -> None:
        super().__init__(trailing_slash="/?")

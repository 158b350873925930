"""The router every app registers its viewsets on: contract paths, trailing slash tolerated."""

from rest_framework.routers import SimpleRouter


class APIRouter(SimpleRouter):
    def __init__(self) -> None:
        super().__init__()
        # SimpleRouter turns any truthy `trailing_slash` argument into "/", so set the optional
        # slash after it has run.
        self.trailing_slash = "/?"

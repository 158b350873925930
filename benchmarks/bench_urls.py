"""One view that runs the real authentication layer but admits anyone, so the same view can be
timed with and without credentials."""

from django.http import JsonResponse
from django.urls import re_path
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from autoglue.urls import urlpatterns as project_urlpatterns


class WhoAmIView(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        user = request.user
        return Response({"authenticated": bool(user and user.is_authenticated)})


def hello(request):
    """Plain Django, no DRF: what the middleware stack is measured against."""
    return JsonResponse({"hello": "world"})


urlpatterns = [
    re_path(r"^bench/whoami$", WhoAmIView.as_view()),
    re_path(r"^bench/hello$", hello),
    *project_urlpatterns,
]

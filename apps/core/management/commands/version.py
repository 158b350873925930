"""`manage.py version`: the build information also served at /api/v1/version."""

import json
from typing import Any

from django.core.management.base import BaseCommand

from apps.core.version import version_info


class Command(BaseCommand):
    help = "Print version, commit and runtime information."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(json.dumps(version_info(), indent=2))

"""`manage.py autoglue_version`: the build information also served at /api/v1/version.

Not `version`: `manage.py version` is Django's own and prints Django's version.
"""

import json
from typing import Any

from django.core.management.base import BaseCommand

from apps.core.version import version_info


class Command(BaseCommand):
    help = "Print Autoglue's version, commit and runtime information (as GET /api/v1/version)."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(json.dumps(version_info(), indent=2))

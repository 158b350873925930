"""`manage.py celery_ping`: send a trivial task through the broker, wait for the answer."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.core.tasks import ping


class Command(BaseCommand):
    help = "Check that a Celery worker is consuming tasks (exit 1 if none answers in time)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--timeout", type=float, default=30.0)

    def handle(self, *args: Any, **options: Any) -> None:
        result = ping.apply_async()
        try:
            answer = result.get(timeout=options["timeout"])
        except Exception as exc:
            raise CommandError(f"no worker answered within {options['timeout']}s: {exc}") from exc
        self.stdout.write(answer)

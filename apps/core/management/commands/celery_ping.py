"""`manage.py celery_ping`: send a trivial task through the broker, wait for the answer."""

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from apps.core.tasks import ping


class Command(BaseCommand):
    help = "Check that a Celery worker is consuming tasks (exit 1 if none answers in time)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--timeout", type=float, default=30.0)
        # e.g. ssh: prove the worker of that queue consumes it (the task's route is default).
        parser.add_argument("--queue", default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        result = ping.apply_async(queue=options["queue"])
        try:
            answer = result.get(timeout=options["timeout"])
        except Exception as exc:
            raise CommandError(f"no worker answered within {options['timeout']}s: {exc}") from exc
        self.stdout.write(answer)

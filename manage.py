#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "autoglue.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # A missing or unreadable setting is an operator's mistake, not a bug: one line that
        # names the variable, not a traceback through the settings module.
        sys.exit(f"manage.py: {exc}")


if __name__ == "__main__":
    main()

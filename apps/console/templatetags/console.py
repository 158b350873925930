"""Template helpers of the console: `{% status_badge value %}` and `{% local_time value %}`,
the same markup the lists use (apps.orgs.console_base)."""

from __future__ import annotations

from typing import Any

from django import template

from apps.orgs import console_base

register = template.Library()


@register.simple_tag
def status_badge(value: Any) -> str:
    return console_base.status_badge(value)


@register.simple_tag
def local_time(value: Any) -> str:
    return console_base.time_element(value)

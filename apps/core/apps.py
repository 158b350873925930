from typing import Any

from django.apps import AppConfig


class CoreConfig(AppConfig):
    """What every app shares: base models, the API conventions, middleware, logging."""

    name = "apps.core"
    label = "core"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        strict_string_fields()


def strict_string_fields() -> None:
    """Every DRF string field (CharField and its subclasses: e-mail, regex, slug, URL, the ones a
    ModelSerializer makes for model text fields) refuses a JSON number, as the original does:
    DRF turns `"name": 123` into the text "123", so a client's type error would be stored
    silently. Done once here, for every serializer, rather than by a field class each
    declaration must remember to use."""
    from rest_framework import fields

    lenient = fields.CharField.to_internal_value
    if getattr(lenient, "autoglue_strict", False):
        return

    def to_internal_value(self: fields.CharField, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return lenient(self, data)

    to_internal_value.autoglue_strict = True  # type: ignore[attr-defined]
    fields.CharField.to_internal_value = to_internal_value  # type: ignore[method-assign,assignment]

"""The console's break-glass password form: Django admin's, with throttling."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from apps.console import services

THROTTLED_MESSAGE = "Too many failed sign-in attempts. Try again later."


class ThrottledAdminAuthenticationForm(AdminAuthenticationForm):
    """Refuses without checking the password once the account or the client IP has used up its
    failures (apps.console.services); counts each failure. The password door is for platform
    admins only (break-glass); everyone else signs in with Google Workspace."""

    def confirm_login_allowed(self, user: Any) -> None:
        super().confirm_login_allowed(user)
        if not user.is_superuser:
            raise ValidationError(
                self.error_messages["invalid_login"],
                code="invalid_login",
                params={"username": self.username_field.verbose_name},
            )

    def clean(self) -> dict[str, Any]:
        email = str(self.cleaned_data.get("username") or "")
        meta = self.request.META if self.request is not None else {}
        ip = str(getattr(self.request, "client_ip", "") or meta.get("REMOTE_ADDR", ""))
        if email and services.login_throttled(email=email, ip=ip):
            self.request.console_login_throttled = True  # type: ignore[union-attr]
            raise ValidationError(THROTTLED_MESSAGE, code="throttled")
        try:
            cleaned = super().clean()
        except ValidationError:
            if email:
                services.login_failure_record(email=email, ip=ip)
            raise
        services.login_success_record(email=email)
        return cleaned

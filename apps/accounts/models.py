"""Users. Identity and access (memberships, keys, tokens, SSO links) build on this model."""

from __future__ import annotations

import uuid

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, primary_email: str, password: str | None = None, **fields) -> User:
        user = self.model(primary_email=self.normalize_email(primary_email).lower(), **fields)
        if password:
            user.set_password(password)
        else:
            # Users normally sign in with SSO or tokens; no password means none is accepted.
            user.set_unusable_password()
        user.save(using=self._db)
        return user

    def create_superuser(self, primary_email: str, password: str | None = None, **fields) -> User:
        fields["is_admin"] = True
        return self.create_user(primary_email, password, **fields)


class User(AbstractBaseUser):
    """A person. `is_admin` makes a platform admin (the console, the action catalogue);
    `is_disabled` locks the account out of every sign-in and token without deleting it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    primary_email = models.EmailField(unique=True)
    display_name = models.CharField(max_length=255, blank=True)
    avatar_url = models.URLField(max_length=2048, blank=True)
    is_disabled = models.BooleanField(default=False)
    is_admin = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = UserManager()

    USERNAME_FIELD = "primary_email"
    EMAIL_FIELD = "primary_email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.primary_email

    @property
    def is_active(self) -> bool:  # type: ignore[override]
        return not self.is_disabled

    @property
    def is_staff(self) -> bool:
        """The Django admin console is for platform admins only."""
        return self.is_admin and not self.is_disabled

    @property
    def is_superuser(self) -> bool:
        return self.is_staff

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return self.is_staff

    def has_module_perms(self, app_label: str) -> bool:
        return self.is_staff

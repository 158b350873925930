"""Users. Identity and access (memberships, keys, tokens, SSO links) build on this model."""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.db import models
from django.db.models.functions import Lower

from apps.core.fields import EncryptedTextField


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
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.primary_email

    @property
    def is_active(self) -> bool:  # type: ignore[override]
        return not self.is_disabled

    @property
    def is_staff(self) -> bool:
        """Who may open the admin console: platform admins, and members of an organization,
        who see only their organizations' rows with their role's rights there (the console's
        org-scoped admin base in apps.orgs.console_base)."""
        if self.is_disabled:
            return False
        if self.is_admin:
            return True
        if not hasattr(self, "_is_member"):
            # Asked several times per console request; the answer is kept on the instance.
            self._is_member = bool(self.pk) and self.memberships.exists()
        return self._is_member

    @property
    def is_superuser(self) -> bool:
        """A platform admin: every organization, every model."""
        return self.is_admin and not self.is_disabled

    # Django's own permission checks (used by admin pages not built on the org-scoped base,
    # e.g. the beat schedules) are for platform admins only.
    def has_perm(self, perm: str, obj: object = None) -> bool:
        return self.is_superuser

    def has_module_perms(self, app_label: str) -> bool:
        return self.is_superuser


class UserEmail(models.Model):
    """An e-mail address of a user. Exactly one per user is primary (mirrors `primary_email`);
    an address belongs to at most one user (case-insensitive), so SSO linking by e-mail is
    unambiguous."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="emails")
    email = models.EmailField()
    is_verified = models.BooleanField(default=False)
    is_primary = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "e-mail address"
        verbose_name_plural = "e-mail addresses"
        ordering = ["-is_primary", "created_at"]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="accounts_useremail_unique_email"),
            models.UniqueConstraint(
                fields=["user"],
                condition=models.Q(is_primary=True),
                name="accounts_useremail_unique_primary",
            ),
        ]

    def __str__(self) -> str:
        return self.email


class OAuthIdentity(models.Model):
    """A link between a user and an identity at an SSO provider (`provider` + the provider's
    stable `subject`); one per (provider, subject)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="identities")
    provider = models.CharField(max_length=32)
    subject = models.CharField(max_length=255)
    # Refreshed at every sign-in: the provider's current address for this subject.
    email = models.EmailField(blank=True)
    email_verified = models.BooleanField(default=False)
    # Google's `hd` claim at the last sign-in: the Workspace domain managing the account ("" for
    # a consumer account). Group sync reads only accounts its organization's Workspace manages.
    hd = models.CharField(max_length=253, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "OAuth identity"
        verbose_name_plural = "OAuth identities"
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "subject"],
                name="accounts_oauthidentity_unique_provider_subject",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.subject}"


class APIKey(models.Model):
    """A user API key (`scope="user"`, header X-API-KEY) or an org key/secret pair
    (`scope="org"`, headers X-ORG-KEY + X-ORG-SECRET).

    The visible token carries `public_id` (unique, indexed), so authentication finds the row in
    one indexed lookup; only an argon2id hash of the secret part is stored (`secret_hash`).
    Plaintext is shown once, at creation.
    """

    class Scope(models.TextChoices):
        USER = "user"
        ORG = "org"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    scope = models.CharField(max_length=8, choices=Scope.choices)
    # "user", "org" or e.g. "cluster_bastion" for ephemeral cluster automation keys.
    purpose = models.CharField(max_length=32, default="user")
    name = models.CharField(max_length=255, blank=True)
    public_id = models.CharField(max_length=32, unique=True)
    secret_hash = models.CharField(max_length=255)
    user = models.ForeignKey(
        User, on_delete=models.CASCADE, null=True, blank=True, related_name="api_keys"
    )
    organization = models.ForeignKey(
        "orgs.Organization",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="api_keys",
    )
    cluster_id = models.UUIDField(null=True, blank=True)
    is_ephemeral = models.BooleanField(default=False)
    # Scopes (beyond the contract, docs/identity.md "Scoped keys"), fixed at creation: nothing
    # edits them afterwards, so a key's powers never grow. Empty lists mean "no limit", which is
    # what every key created without scopes has, and it then behaves as the original's keys.
    read_only = models.BooleanField(default=False)
    # Client networks the key may be used from, normalised CIDR strings.
    allowed_cidrs = models.JSONField(default=list, blank=True)
    # Clusters the key may touch (UUID strings); anything not tied to them is refused.
    allowed_cluster_ids = models.JSONField(default=list, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(scope="user", user__isnull=False, organization__isnull=True)
                    | models.Q(scope="org", organization__isnull=False)
                ),
                name="accounts_apikey_owner_matches_scope",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scope} key {self.name or self.public_id}"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    @property
    def is_scoped(self) -> bool:
        """Whether the key carries any scope beyond the contract's (read-only, CIDRs,
        clusters)."""
        return bool(self.read_only or self.allowed_cidrs or self.allowed_cluster_ids)

    @property
    def prefix(self) -> str:
        """The visible, non-secret start of the token, for recognising a key in a list."""
        return f"{'u' if self.scope == self.Scope.USER else 'org'}_{self.public_id}"


class RefreshToken(models.Model):
    """An opaque refresh token `<id>.<secret>`: looked up by primary key, verified against an
    HMAC-SHA256 digest of the secret. Single use (`used_at`, set by a conditional UPDATE);
    tokens rotated from one login share a `family_id`, revoked together on logout or reuse."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="refresh_tokens")
    family_id = models.UUIDField(db_index=True)
    digest = models.CharField(max_length=64)
    expires_at = models.DateTimeField()
    # The family's absolute end: rotation never extends a login past it.
    family_expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"refresh token {self.id}"


class SigningKey(models.Model):
    """A JWT signing key pair. The private PEM is encrypted at rest; the newest active key
    signs, and every active, unexpired key verifies and is published in the JWKS."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kid = models.CharField(max_length=64, unique=True)
    alg = models.CharField(max_length=16, default="RS256")
    public_pem = models.TextField()
    private_pem = EncryptedTextField()
    is_active = models.BooleanField(default=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.alg} {self.kid}"

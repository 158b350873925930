"""Settings for the test suite: the real PostgreSQL and Redis on loopback, never SQLite."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-not-for-production-use-0123456789")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/autoglue")
# A database index of its own, so flushing it between tests never touches anything else.
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/9")
os.environ.setdefault("AUTOGLUE_ENV", "production")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
# A fixed master key for tests only (32 bytes of 0x42); never used anywhere else.
os.environ.setdefault(
    "AUTOGLUE_MASTER_KEYS", "test-master:QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="
)

from autoglue.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Services run eagerly in unit tests; tests about jobs start a real worker and turn this off.
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
# The SSH client tests log in to a local sshd on 127.0.0.1.
AUTOGLUE_ALLOW_LOOPBACK_TARGETS = True
CACHES["default"]["KEY_PREFIX"] = f"test-{os.getpid()}"  # noqa: F405
# Static files come straight from the app folders; tests never run collectstatic.
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
STATIC_ROOT = None  # type: ignore[assignment]  # settings.py infers a Path; tests have none
WHITENOISE_USE_FINDERS = True
# Parallel runs on one machine (several developers or helpers) each name their own test database
# and use their own Redis index through REDIS_URL.
DATABASES["default"]["TEST"] = {  # noqa: F405
    "NAME": os.environ.get("TEST_DATABASE_NAME", "test_autoglue"),
}
# Unit tests run jobs in-process (apps.jobs.tests.support.run_queued); tests with a real worker
# turn publishing back on.
JOBS_PUBLISH = False

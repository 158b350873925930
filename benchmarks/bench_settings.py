"""Settings for the benchmarks: the test settings and a benchmark URLconf.

The rate limits are off unless BENCH_RATE_LIMIT sets one (middleware_overhead.py sets a limit too
high to reach, so the limiter's Redis round trip is part of what it measures); BENCH_BARE=1
removes every middleware but allauth's (the "bare Django" baseline); BENCH_CELERY_EAGER=0 publishes
jobs instead of running them in-process."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_autoglue")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/8")

from autoglue.test_settings import *  # noqa: E402, F403

ROOT_URLCONF = "benchmarks.bench_urls"
RATE_LIMIT = os.environ.get("BENCH_RATE_LIMIT", "")
# The per-person and per-key limits follow the same switch: a benchmark's thousands of requests
# from one key would otherwise meet the production 1000/m and measure 429s.
# The failed-credential budget too: with it on and the per-IP limit off, only requests that carry
# a credential would pay the limiter's Redis round trip, and a key/anonymous ratio would measure
# that instead of authentication.
RATE_LIMIT_USER = RATE_LIMIT_KEY = RATE_LIMIT_AUTH = RATE_LIMIT_AUTH_FAILURES = RATE_LIMIT
# audit_contention.py: jobs a write queues (a DNS reconcile) are published to the broker and
# left there, not run inside the web process as the test settings' eager mode would.
if os.environ.get("BENCH_CELERY_EAGER") == "0":
    CELERY_TASK_ALWAYS_EAGER = False
if os.environ.get("BENCH_BARE") == "1":
    # allauth refuses to boot without its (cheap) middleware; everything else goes.
    MIDDLEWARE = ["allauth.account.middleware.AccountMiddleware"]
DEBUG = False
LOGGING = {"version": 1, "disable_existing_loggers": True}

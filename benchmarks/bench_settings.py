"""Settings for benchmarks/auth_overhead.py: the test settings, a benchmark URLconf, no rate
limit (the limiter would otherwise answer most of the load with 429)."""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench_autoglue")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/13")

from autoglue.test_settings import *  # noqa: E402, F403

ROOT_URLCONF = "benchmarks.bench_urls"
RATE_LIMIT = ""
DEBUG = False
LOGGING = {"version": 1, "disable_existing_loggers": True}

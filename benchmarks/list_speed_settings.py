"""The production settings (autoglue.settings, configured by the environment list_speed.py
passes) plus the raw-SQL floor views of benchmarks/list_speed_views.py."""

import os

from autoglue.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.list_speed_views"

# metrics_overhead.py's baseline: the same stack without the metrics middleware.
if os.environ.get("BENCH_METRICS") == "0":
    MIDDLEWARE = [m for m in MIDDLEWARE if not m.endswith(".MetricsMiddleware")]  # noqa: F405

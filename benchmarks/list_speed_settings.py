"""The production settings (autoglue.settings, configured by the environment list_speed.py
passes) plus the raw-SQL floor views of benchmarks/list_speed_views.py."""

from autoglue.settings import *  # noqa: F403

ROOT_URLCONF = "benchmarks.list_speed_views"

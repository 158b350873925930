"""A benchmark that misses its goal says MISSED and fails (main() exits with what report()
returns): checked on the log viewer benchmarks' reports with figures like those of the review
(API p50 1.65x with viewers)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import jobs_parallelism  # noqa: E402
import log_viewers  # noqa: E402
import metrics_overhead  # noqa: E402
import webhooks_throughput  # noqa: E402


def _api(ratio: float) -> dict[str, float]:
    return {
        "none_p50": 0.010,
        "none_p90": 0.012,
        "viewers_p50": 0.010 * ratio,
        "viewers_p90": 0.02,
        "ratio": ratio,
        "events_min": 50,
        "events_median": 60,
        "lines": 300,
        "none_sessions_s": 18,
        "viewers_sessions_s": 45,
        "none_commits_s": 80,
        "viewers_commits_s": 190,
    }


@pytest.mark.parametrize(("ratio", "met"), [(1.65, False), (1.1, True)])
def test_jobs_parallelism_fails_when_viewers_slow_the_api_past_the_goal(ratio, met, capsys):
    args = argparse.Namespace(
        bastions=10, viewers=50, script_seconds=2, bootstrap_rounds=2, rounds=2, requests=200
    )
    assert jobs_parallelism.report(args, 2.0, 3.0, _api(ratio), 90) is met
    assert ("MISSED" in capsys.readouterr().out) is not met


def _sample(p50: float, pg: int) -> dict:
    return {"times": [p50] * 5, "pg": pg, "redis": 3, "rss": 200, "threads": 12}


@pytest.mark.parametrize(
    ("p50", "pg", "back", "met"),
    [(0.0165, 2, 1.0, False), (0.010, 40, 1.0, False), (0.010, 2, 9.0, False), (0.011, 6, 1, True)],
)
def test_log_viewers_fails_on_any_missed_goal(p50, pg, back, met, capsys):
    phases = {"none": [_sample(0.010, 0)], "viewers": [_sample(p50, pg)], "back": [back]}
    args = argparse.Namespace(viewers=1000, rounds=1, requests=5)
    assert log_viewers.report(args, phases) is met
    assert ("MISSED" in capsys.readouterr().out) is not met


@pytest.mark.parametrize(
    ("on", "scrape", "met"),
    [(0.0110, 0.050, False), (0.0102, 0.250, False), (0.0104, 0.120, True)],
)
def test_metrics_overhead_fails_past_5_percent_or_a_slow_scrape(on, scrape, met, capsys):
    args = argparse.Namespace(scrapes=30)
    assert metrics_overhead.report(args, on, 0.010, scrape) is met
    assert ("MISSED" in capsys.readouterr().out) is not met


def _phase(events: int, per_second: float, p95: float, *, lost: int = 0) -> dict[str, float]:
    done = events * 10 - lost
    return {
        "events": events,
        "succeeded": done,
        "unique": done,
        "requests": done,
        "bad": 0,
        "seconds": 60,
        "per_second": per_second,
        "p50": p95 / 2,
        "p95": p95,
        "max": p95 * 2,
    }


@pytest.mark.parametrize(
    ("burst", "steady", "met"),
    [
        (_phase(10_000, 250, 300), _phase(600, 50, 0.1), True),
        # The figures of the last prefork run: 34 deliveries/s, its backlog draining slowly.
        (_phase(10_000, 34, 2800), _phase(600, 17, 0.1), False),
        # Below the throughput goal.
        (_phase(10_000, 30, 300), _phase(600, 50, 0.1), False),
        # Fast enough, but the steady phase waits behind something.
        (_phase(10_000, 250, 300), _phase(600, 50, 0.5), False),
        # One delivery lost.
        (_phase(10_000, 250, 300, lost=1), _phase(600, 50, 0.1), False),
    ],
)
def test_webhooks_throughput_fails_on_any_missed_goal(burst, steady, met, capsys):
    args = argparse.Namespace(endpoints=10)
    assert webhooks_throughput.report(args, burst, steady) is met
    assert ("MISSED" in capsys.readouterr().out) is not met

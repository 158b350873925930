"""The shipped alert rules and dashboard (deploy/observability) are valid PromQL and the
alerts fire on the series they are meant for: Debian's promtool checks them for real."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "observability"


def _promtool(*args: str, cwd: Path = DEPLOY) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603 - fixed argv
        ["promtool", *args],  # noqa: S607 - Debian's promtool from PATH (.ci/run installs it)
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def dashboard_expressions() -> list[tuple[str, str]]:
    """(panel title, expression) for every query of the Grafana dashboard."""
    board = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    return [(p["title"], t["expr"]) for p in board["panels"] for t in p["targets"]]


def alert_expressions() -> list[tuple[str, str]]:
    rules = yaml.safe_load((DEPLOY / "alerts.yml").read_text())
    return [(r["alert"], r["expr"]) for g in rules["groups"] for r in g["rules"]]


def test_promtool_accepts_the_alert_rules():
    result = _promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_fires_on_its_fixture_and_stays_quiet_otherwise():
    result = _promtool("test", "rules", "alerts-test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_runbook_and_a_severity():
    rules = yaml.safe_load((DEPLOY / "alerts.yml").read_text())
    for rule in (r for g in rules["groups"] for r in g["rules"]):
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert len(rule["annotations"]["runbook"]) > 80, rule["alert"]


def test_the_alerts_the_issue_asks_for_exist():
    names = {name for name, _ in alert_expressions()}
    assert {
        "AutoglueJobsFailing",
        "AutoglueOldestQueuedJobTooOld",
        "AutoglueQueueNoConsumer",
        "AutoglueBeatStale",
        "AutoglueBackupStale",
        "AutoglueHigh5xxRatio",
        "AutoglueHighP95Latency",
        "AutoglueAuditChainBroken",
    } <= names


def test_every_dashboard_query_is_valid_promql(tmp_path):
    # promtool parses expressions only inside rule files: each query becomes a recording rule.
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:panel_{i}", "expr": expr}
                    for i, (_, expr) in enumerate(dashboard_expressions())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump(rules))
    result = _promtool("check", "rules", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(dashboard_expressions()) >= 20

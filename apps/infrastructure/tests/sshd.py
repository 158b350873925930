"""A throwaway sshd (Debian openssh-server) on a free loopback port, for tests that need a
real SSH host: its own host key, one authorized_keys file per user name, and optionally its own
`$HOME` for every session (so files a job writes under `~` land in the test's folder)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from apps.infrastructure.keygen import generate_key_pair

SSHD = "/usr/sbin/sshd"


def ensure_sshd() -> None:
    if os.path.exists(SSHD):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "openssh-server"],
            check=False,
            capture_output=True,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            timeout=300,
        )
    if not os.path.exists(SSHD):
        pytest.skip("openssh-server is not installed and could not be installed (needs root + apt)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SSHDaemon:
    """A throwaway sshd: its own host key, one authorized_keys file per user name."""

    def __init__(self, root: Path, *, home: Path | None = None) -> None:
        self.root = root
        self.home = home
        self.port = free_port()
        self.keys_dir = root / "keys"
        self.keys_dir.mkdir()
        host = generate_key_pair(key_type="ed25519")
        host_key_path = root / "host_ed25519"
        host_key_path.write_text(host.private_key)
        host_key_path.chmod(0o600)
        self.host_public_key = host.public_key
        self.config = root / "sshd_config"
        self.config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {host_key_path}",
                    f"PidFile {root / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.keys_dir}/%u",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "PermitRootLogin prohibit-password",
                    "UsePAM no",
                    "StrictModes no",
                    "MaxStartups 100",
                    "MaxSessions 50",
                    *([f"SetEnv HOME={home}"] if home else []),
                ]
            )
            + "\n"
        )
        self.process: subprocess.Popen | None = None

    def authorize(self, user: str, public_key: str) -> None:
        with (self.keys_dir / user).open("a") as handle:
            handle.write(public_key + "\n")

    def start(self) -> None:
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.config.resolve())],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.process.stderr.read().decode()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    if sock.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start within 10 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class NotSSHServer:
    """A plain TCP service on a free loopback port that is not SSH: every connection gets
    `lines` lines of `CANARY-BANNER-<n>` (a chatty SMTP or HTTP server, say), then is held open
    until the client leaves. Counts connections, so a test can tell none was made."""

    def __init__(self, *, lines: int = 120) -> None:
        self.port = free_port()
        self.lines = lines
        self.accepted = 0
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def authorize(self, user: str, public_key: str) -> None:
        """Nothing to authorize: it never gets as far as a login (`bastion_on` calls this)."""

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            self.accepted += 1
            with conn:
                try:
                    for number in range(self.lines):
                        conn.sendall(f"CANARY-BANNER-{number} service ready\r\n".encode())
                    conn.settimeout(5)
                    conn.recv(1024)
                except OSError:
                    pass  # the client went away first; the next connection is served the same

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._listener.close()

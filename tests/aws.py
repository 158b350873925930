"""moto in server mode: a real HTTP endpoint speaking the AWS APIs (Route 53, S3) for tests.

boto3 talks to it over HTTP exactly as it talks to AWS (the endpoint comes from
`AWS_ENDPOINT_URL`, as in production with an S3- or Route 53-compatible service); nothing in
boto3 is patched. One server per test session; `reset()` empties its state between tests.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.live import free_port


class MotoServer:
    """A `moto_server` child process on a free loopback port."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._handle = log.open("wb")
        self.proc = subprocess.Popen(  # noqa: S603 - moto's own entry point
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._handle,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited: {log.read_text(errors='replace')[-2000:]}")
            try:
                requests.get(f"{self.url}/moto-api/", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto_server did not answer within 30 s")

    def reset(self) -> None:
        """Forget every zone, bucket and object (moto's own reset endpoint)."""
        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._handle.close()

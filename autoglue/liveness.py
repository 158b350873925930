"""Liveness files for the worker and beat containers, read by docker/healthcheck.py.

A liveness probe that asks the broker (Celery's ping) fails for every worker at once while Redis
is away, and the restarts it causes kill the jobs those workers run. These files make liveness a
local question: is this process still scheduling work? Each file holds the age, in seconds, past
which it counts as stale, and its modification time is the last sign of life.

- A worker touches WORKER_FILE from a thread of its main process, from the moment it is ready
  until it shuts down. The file goes stale when that process is gone or frozen (a thread cannot
  run), not when the broker is unreachable.
- Beat touches BEAT_FILE after every scheduler tick, so a scheduler stuck in one tick goes stale.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path
from typing import Any

from celery import signals

logger = logging.getLogger(__name__)

# docker/healthcheck.py names the same files (it imports nothing from the project).
WORKER_FILE = Path(tempfile.gettempdir()) / "autoglue-worker-alive"
BEAT_FILE = Path(tempfile.gettempdir()) / "autoglue-beat-tick"
WORKER_INTERVAL_SECONDS = 10.0
# Missing several touches in a row, not one late one, makes a worker stale.
WORKER_STALE_SECONDS = 120
# Beat may sleep up to its scheduler's max_interval between ticks; at least this much slack.
BEAT_MIN_STALE_SECONDS = 120

_stop = threading.Event()


def touch(path: Path, stale_after: float) -> None:
    """Record a sign of life: the file's mtime is now, its content the age that is too old."""
    try:
        path.write_text(f"{int(stale_after)}\n")
    except OSError:
        # A full or read-only /tmp must not stop the worker; the probe will say so instead.
        logger.warning("could not write the liveness file %s", path, exc_info=True)


def _beat_worker_file() -> None:
    while not _stop.is_set():
        touch(WORKER_FILE, WORKER_STALE_SECONDS)
        _stop.wait(WORKER_INTERVAL_SECONDS)


@signals.worker_ready.connect
def worker_ready(**_: Any) -> None:
    _stop.clear()
    threading.Thread(target=_beat_worker_file, name="liveness", daemon=True).start()


@signals.worker_shutdown.connect
def worker_shutdown(**_: Any) -> None:
    _stop.set()
    WORKER_FILE.unlink(missing_ok=True)


@signals.beat_init.connect
def beat_init(sender: Any, **_: Any) -> None:
    """Wrap this beat's scheduler tick so each finished tick touches BEAT_FILE."""
    scheduler = sender.scheduler
    stale_after = max(BEAT_MIN_STALE_SECONDS, 3 * float(scheduler.max_interval))
    tick = scheduler.tick

    def tick_and_touch(*args: Any, **kwargs: Any) -> Any:
        interval = tick(*args, **kwargs)
        touch(BEAT_FILE, stale_after)
        return interval

    scheduler.tick = tick_and_touch
    touch(BEAT_FILE, stale_after)

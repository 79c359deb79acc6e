"""Several ingest workers under one ``egenmon-ingest run`` (setting ``processes``).

One worker is one Python process, and its parsing holds the GIL: on a host with more
cores, more processes on the same shared subscription store more readings per second.
The supervisor starts them as ``python -m ingest run`` children, each with its own
persistent MQTT session and metrics port, forwards SIGTERM/SIGINT to them, and exits
non-zero as soon as one dies on its own, so that systemd restarts the whole set (with its
start-rate limits) instead of this process hiding a worker that crashes in a loop.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import FrameType

from ingest.settings import IngestSettings

log = logging.getLogger(__name__)

# Set in each worker's environment: the worker stops when its parent is no longer this pid
# (the supervisor was SIGKILLed), instead of running on unsupervised.
SUPERVISOR_PID_ENV = "EGENMON_INGEST_SUPERVISOR_PID"


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    index: int
    client_id: str
    metrics_port: int


def worker_specs(settings: IngestSettings) -> list[WorkerSpec]:
    """Worker 0 keeps ``client_id`` (going from 1 process to N keeps its session); worker
    i > 0 is ``{client_id}-{i}``. Metrics ports count up from ``metrics_port`` (0: each
    picks a free one)."""
    return [
        WorkerSpec(
            index=i,
            client_id=settings.client_id if i == 0 else f"{settings.client_id}-{i}",
            metrics_port=settings.metrics_port + i if settings.metrics_port else 0,
        )
        for i in range(settings.processes)
    ]


def worker_env(base: Mapping[str, str], spec: WorkerSpec, supervisor_pid: int) -> dict[str, str]:
    overrides = {
        "EGENMON_INGEST_PROCESSES": "1",
        "EGENMON_INGEST_CLIENT_ID": spec.client_id,
        "EGENMON_INGEST_METRICS_PORT": str(spec.metrics_port),
        SUPERVISOR_PID_ENV: str(supervisor_pid),
    }
    # Settings names are case-insensitive: a lower-case spelling in the parent's
    # environment must not win over the override.
    keys = {k.lower() for k in overrides}
    env = {k: v for k, v in base.items() if k.lower() not in keys}
    env.update(overrides)
    return env


class Supervisor:
    def __init__(
        self,
        settings: IngestSettings,
        *,
        command: Sequence[str] = (sys.executable, "-m", "ingest", "run"),
        stop_timeout_s: float = 25.0,
    ) -> None:
        self.settings = settings
        self.command = list(command)
        # Within systemd's TimeoutStopSec (30 s), so a worker that hangs is killed by us,
        # after its siblings had their time to acknowledge what they committed.
        self.stop_timeout_s = stop_timeout_s
        self.workers: list[tuple[WorkerSpec, subprocess.Popen[bytes]]] = []
        self._stop = threading.Event()

    def start(self) -> None:
        for spec in worker_specs(self.settings):
            proc = subprocess.Popen(self.command, env=worker_env(os.environ, spec, os.getpid()))
            self.workers.append((spec, proc))
            log.info(
                "ingest worker started",
                extra={
                    "worker": spec.index,
                    "pid": proc.pid,
                    "client_id": spec.client_id,
                    "metrics_port": spec.metrics_port,
                },
            )

    def request_stop(self) -> None:
        self._stop.set()

    def wait(self) -> int:
        """Until a stop is requested or a worker exits; then stop the rest. The exit code."""
        failed: WorkerSpec | None = None
        while failed is None and not self._stop.wait(0.5):
            for spec, proc in self.workers:
                code = proc.poll()
                if code is not None:
                    log.error(
                        "ingest worker exited; stopping the others",
                        extra={"worker": spec.index, "pid": proc.pid, "exit_code": code},
                    )
                    failed = spec
                    break
        codes = self._stop_all()
        if failed is not None:
            return 1
        return 0 if all(code == 0 for code in codes) else 1

    def _stop_all(self) -> list[int]:
        for _, proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        codes = []
        for spec, proc in self.workers:
            try:
                codes.append(proc.wait(timeout=max(0.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                log.error("ingest worker did not stop in time; killed", extra={"worker": spec.index, "pid": proc.pid})
                proc.kill()
                codes.append(proc.wait())
        return codes

    def run_forever(self) -> int:
        def _signal(signum: int, frame: FrameType | None) -> None:
            self.request_stop()

        signal.signal(signal.SIGTERM, _signal)
        signal.signal(signal.SIGINT, _signal)
        self.start()
        code = self.wait()
        log.info("ingest supervisor stopped", extra={"exit_code": code})
        return code

"""``egenmon-ingest run`` with ``processes`` > 1: worker processes under one supervisor."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from deploy.localstack import LocalMosquitto, free_port_range
from ingest.settings import IngestSettings
from ingest.supervisor import SUPERVISOR_PID_ENV, Supervisor, WorkerSpec, worker_env, worker_specs
from tests.ingest.helpers import purge_session, wait_until
from tests.ingest.processes import (
    IngestProcess,
    publish_and_await,
    reading_stream,
    seed_gateway,
)


def test_worker_specs_keep_the_first_session_and_count_ports_up() -> None:
    settings = IngestSettings(client_id="ingest-a", metrics_port=9200, processes=3)
    assert worker_specs(settings) == [
        WorkerSpec(0, "ingest-a", 9200),
        WorkerSpec(1, "ingest-a-1", 9201),
        WorkerSpec(2, "ingest-a-2", 9202),
    ]
    free = IngestSettings(client_id="x", metrics_port=0, processes=2)
    assert [s.metrics_port for s in worker_specs(free)] == [0, 0]


def test_worker_env_overrides_any_spelling_of_the_per_worker_settings() -> None:
    base = {"egenmon_ingest_client_id": "lower", "EGENMON_INGEST_PROCESSES": "4", "MQTT_URL": "mqtt://b:1883"}
    env = worker_env(base, WorkerSpec(2, "ingest-a-2", 9202), supervisor_pid=4321)
    assert "egenmon_ingest_client_id" not in env
    assert env["EGENMON_INGEST_CLIENT_ID"] == "ingest-a-2"
    assert env["EGENMON_INGEST_PROCESSES"] == "1"
    assert env["EGENMON_INGEST_METRICS_PORT"] == "9202"
    assert env[SUPERVISOR_PID_ENV] == "4321"
    assert env["MQTT_URL"] == "mqtt://b:1883"


def test_metrics_ports_must_fit() -> None:
    with pytest.raises(ValidationError, match="exceed 65535"):
        IngestSettings(metrics_port=65_535, processes=2)
    with pytest.raises(ValidationError):
        IngestSettings(processes=0)


def _fake_workers(code: str, **kwargs: float) -> Supervisor:
    """A supervisor over stand-in workers (any command), to test its own logic quickly."""
    settings = IngestSettings(client_id="fake", metrics_port=0, processes=2)
    return Supervisor(settings, command=[sys.executable, "-c", code], **kwargs)


def test_a_worker_ignoring_sigterm_is_killed_after_the_stop_timeout() -> None:
    sup = _fake_workers(
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)", stop_timeout_s=1.0
    )
    sup.start()
    time.sleep(0.5)  # let them install the handler
    sup.request_stop()
    started = time.monotonic()
    assert sup.wait() == 1
    assert time.monotonic() - started < 10
    assert [proc.returncode for _, proc in sup.workers] == [-signal.SIGKILL, -signal.SIGKILL]


def test_a_worker_that_exits_on_its_own_fails_the_set_even_with_status_0() -> None:
    sup = _fake_workers("import os, time; time.sleep(0.2 if os.environ['EGENMON_INGEST_CLIENT_ID'] == 'fake' else 60)")
    sup.start()
    assert sup.wait() == 1
    assert [proc.returncode for _, proc in sup.workers] == [0, -signal.SIGTERM]


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) has stopped working too.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _start_pair(
    ingest_processes: Callable[..., IngestProcess], database_url: str, broker: LocalMosquitto
) -> tuple[IngestProcess, list[int]]:
    port = free_port_range(2)
    sup = ingest_processes(database_url, broker.url, metrics_port=port, env={"EGENMON_INGEST_PROCESSES": "2"})
    ports = [port, port + 1]
    wait_until(lambda: all((h := sup.health(p)) and all(h.values()) for p in ports), timeout_s=40)
    assert len(_children(sup.proc.pid)) == 2
    return sup, ports


@pytest.mark.slow
def test_processes_split_the_subscription_and_stop_together(
    database_url: str, make_mosquitto: Callable[..., LocalMosquitto], ingest_processes: Callable[..., IngestProcess]
) -> None:
    broker = make_mosquitto()
    seed = seed_gateway(database_url)
    payloads, readings = reading_stream(4_000, 4, seed.gateway_id, "SN-procs")
    sup, ports = _start_pair(ingest_processes, database_url, broker)
    children = _children(sup.proc.pid)
    publish_and_await(database_url, broker.url, seed.topic, payloads, readings)
    stored = [sup.metric("egenmon_ingest_readings_stored_total", p) for p in ports]
    assert sum(stored) == 4_000
    assert all(n > 0 for n in stored), f"one process did nothing: {stored}"
    sup.proc.send_signal(signal.SIGTERM)
    assert sup.proc.wait(timeout=30) == 0
    assert not any(_alive(c) for c in children)
    for client_id in (sup.client_id, f"{sup.client_id}-1"):
        purge_session(broker.url, client_id)


@pytest.mark.slow
def test_a_dead_worker_stops_the_supervisor_with_an_error(
    database_url: str, make_mosquitto: Callable[..., LocalMosquitto], ingest_processes: Callable[..., IngestProcess]
) -> None:
    broker = make_mosquitto()
    sup, _ = _start_pair(ingest_processes, database_url, broker)
    first, second = _children(sup.proc.pid)
    os.kill(second, signal.SIGKILL)
    # Non-zero, so that systemd restarts the set; the sibling was stopped, not orphaned.
    assert sup.proc.wait(timeout=30) == 1
    assert not _alive(first)


@pytest.mark.slow
def test_workers_stop_when_their_supervisor_is_killed(
    database_url: str, make_mosquitto: Callable[..., LocalMosquitto], ingest_processes: Callable[..., IngestProcess]
) -> None:
    broker = make_mosquitto()
    sup, _ = _start_pair(ingest_processes, database_url, broker)
    children = _children(sup.proc.pid)
    sup.kill()
    deadline = time.monotonic() + 20
    while any(_alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(c) for c in children), "workers ran on without their supervisor"

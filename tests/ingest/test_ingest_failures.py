"""Failure injection with ingest as a real subprocess: SIGKILL, PostgreSQL restart, two workers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from deploy.localstack import LocalMosquitto, LocalPostgres, free_port
from device_profiles.vocabulary import Kind
from device_profiles.wire import Reading
from ingest.schema import migrate
from tests.ingest.helpers import (
    Publisher,
    Seed,
    batch_bytes,
    count,
    make_reading,
    purge_session,
    seed_patient,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]
KINDS = [Kind.BLOOD_PRESSURE, Kind.GLUCOSE_CGM, Kind.WEIGHT, Kind.SPO2, Kind.TEMPERATURE]


class IngestProcess:
    """``python -m ingest run`` as a subprocess, with its metrics port."""

    def __init__(self, database_url: str, mqtt_url: str, client_id: str, log_path: Path) -> None:
        self.metrics_port = free_port()
        self.client_id = client_id
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": database_url,
            "MQTT_URL": mqtt_url,
            "EGENMON_INGEST_CLIENT_ID": client_id,
            "EGENMON_INGEST_METRICS_PORT": str(self.metrics_port),
            "EGENMON_INGEST_DB_RETRY_MAX_S": "1",
            # Small transactions, so a failure always lands between two of them.
            "EGENMON_INGEST_BATCH_MAX_MESSAGES": "50",
        }
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ingest", "run"], cwd=ROOT, env=env, stdout=self._log, stderr=self._log
        )

    def health(self) -> dict[str, bool] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/healthz", timeout=2) as resp:
                return dict(json.loads(resp.read()))
        except (OSError, urllib.error.URLError):
            return None

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, "ingest exited"
            h = self.health()
            return bool(h and all(h.values()))

        wait_until(ready, timeout_s=30)

    def metric(self, name: str) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def ingest_processes(tmp_path: Path) -> Iterator[Callable[..., IngestProcess]]:
    procs: list[IngestProcess] = []

    def start(database_url: str, mqtt_url: str, client_id: str | None = None) -> IngestProcess:
        p = IngestProcess(
            database_url, mqtt_url, client_id or f"ingest-{uuid.uuid4().hex[:8]}", tmp_path / "ingest.log"
        )
        procs.append(p)
        return p

    try:
        yield start
    finally:
        for p in procs:
            p.stop()
        log = tmp_path / "ingest.log"
        if log.exists():
            sys.stderr.write(log.read_text()[-5000:])


def _stream(n_readings: int, per_message: int, gateway_id: str, serial: str) -> tuple[list[bytes], list[Reading]]:
    readings = [make_reading(KINDS[i % len(KINDS)], serial=serial, seq=i) for i in range(n_readings)]
    payloads = [
        batch_bytes(gateway_id, readings[i : i + per_message], seq=i) for i in range(0, n_readings, per_message)
    ]
    return payloads, readings


def _publish_paced(url: str, topic: str, payloads: list[bytes], per_second: float) -> threading.Thread:
    """Publish in the background at a steady pace, so failures land in the middle of the stream."""

    def run() -> None:
        pub = Publisher(url)
        try:
            start = time.monotonic()
            for i, chunk_start in enumerate(range(0, len(payloads), 10)):
                pub.publish(topic, payloads[chunk_start : chunk_start + 10])
                pause = start + (i + 1) * 10 / per_second - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
        finally:
            pub.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _assert_exactly_once(conn: psycopg.Connection[Any], readings: list[Reading]) -> None:
    ids = {r[0] for r in conn.execute("SELECT reading_id FROM reading_raw").fetchall()}
    assert ids == {r.reading_id for r in readings}
    expected_rows = sum(len(r.values) for r in readings)
    assert count(conn, "SELECT count(*) FROM observation") == expected_rows
    assert (
        count(conn, "SELECT count(*) FROM (SELECT DISTINCT reading_id, component FROM observation) d") == expected_rows
    )


def _seed(database_url: str) -> Seed:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return seed_patient(conn)


def _stored(database_url: str) -> int:
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=2) as conn:
            return count(conn, "SELECT count(*) FROM reading_raw")
    except psycopg.OperationalError:
        return -1


@pytest.mark.slow
def test_sigkill_mid_stream_loses_and_duplicates_nothing(
    database_url: str, make_mosquitto: Callable[..., LocalMosquitto], ingest_processes: Callable[..., IngestProcess]
) -> None:
    broker = make_mosquitto()
    seed = _seed(database_url)
    payloads, readings = _stream(10_000, 10, seed.gateway_id, "SN-kill")
    first = ingest_processes(database_url, broker.url, "ingest-kill")
    first.wait_ready()
    publisher = _publish_paced(broker.url, seed.topic, payloads, per_second=400)
    wait_until(lambda: _stored(database_url) >= 2_000, timeout_s=60)
    first.kill()
    stored_at_kill = _stored(database_url)
    assert stored_at_kill < 10_000, "the stream ended before the kill"
    time.sleep(0.5)
    second = ingest_processes(database_url, broker.url, "ingest-kill")  # same client id: same session
    second.wait_ready()
    publisher.join(timeout=120)
    wait_until(lambda: _stored(database_url) == 10_000, timeout_s=60)
    time.sleep(0.3)  # late re-deliveries must not add anything
    with psycopg.connect(database_url) as conn:
        _assert_exactly_once(conn, readings)


@pytest.fixture
def restartable_pg(pg_server: LocalPostgres | None, database_url: str) -> Iterator[tuple[str, LocalPostgres]]:
    """A database on a server the test may restart: the session's, or one of its own."""
    if pg_server is not None:
        yield database_url, pg_server
        return
    base = Path(tempfile.mkdtemp(prefix="egenmon-pg-"))
    pg = LocalPostgres(base, durable=False)
    pg.start()
    try:
        migrate(pg.url)
        yield pg.url, pg
    finally:
        pg.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.slow
def test_postgres_restart_mid_stream_loses_nothing(
    restartable_pg: tuple[str, LocalPostgres],
    make_mosquitto: Callable[..., LocalMosquitto],
    ingest_processes: Callable[..., IngestProcess],
) -> None:
    url, pg = restartable_pg
    broker = make_mosquitto()
    seed = _seed(url)
    payloads, readings = _stream(3_000, 5, seed.gateway_id, "SN-pg")
    worker = ingest_processes(url, broker.url)
    worker.wait_ready()
    publisher = _publish_paced(broker.url, seed.topic, payloads, per_second=300)
    wait_until(lambda: _stored(url) >= 300, timeout_s=60)
    assert _stored(url) < 3_000, "the stream ended before the restart"
    pg.restart()
    publisher.join(timeout=120)
    wait_until(lambda: _stored(url) == 3_000, timeout_s=60)
    assert worker.metric("egenmon_ingest_db_errors_total") >= 1, "the restart was not noticed"
    with psycopg.connect(url) as conn:
        _assert_exactly_once(conn, readings)


@pytest.mark.slow
def test_two_workers_share_the_subscription_without_duplicates(
    database_url: str, make_mosquitto: Callable[..., LocalMosquitto], ingest_processes: Callable[..., IngestProcess]
) -> None:
    broker = make_mosquitto()
    seed = _seed(database_url)
    payloads, readings = _stream(4_000, 4, seed.gateway_id, "SN-two")
    workers = [ingest_processes(database_url, broker.url) for _ in range(2)]
    for w in workers:
        w.wait_ready()
    pub = Publisher(broker.url)
    try:
        pub.publish(seed.topic, payloads)
    finally:
        pub.close()
    wait_until(lambda: _stored(database_url) == 4_000, timeout_s=60)
    with psycopg.connect(database_url) as conn:
        _assert_exactly_once(conn, readings)
    stored = [w.metric("egenmon_ingest_readings_stored_total") for w in workers]
    assert sum(stored) == 4_000
    assert all(n > 0 for n in stored), f"one worker did nothing: {stored}"
    assert sum(w.metric("egenmon_ingest_readings_duplicate_total") for w in workers) == 0
    for w in workers:
        w.stop()
        purge_session(broker.url, w.client_id)


@pytest.mark.slow
def test_broker_restart_mid_stream_loses_nothing(
    database_url: str, make_mosquitto: Callable[..., LocalMosquitto], ingest_processes: Callable[..., IngestProcess]
) -> None:
    broker = make_mosquitto()
    seed = _seed(database_url)
    payloads, readings = _stream(4_000, 5, seed.gateway_id, "SN-broker")
    worker = ingest_processes(database_url, broker.url)
    worker.wait_ready()
    pub = Publisher(broker.url)
    try:
        pub.publish(seed.topic, payloads[:400])
    finally:
        pub.close()
    # Restart while ingest still works through the first half: its un-acked messages
    # survive in the broker's persisted session and are re-delivered after reconnecting.
    broker.restart()
    worker.wait_ready()
    pub = Publisher(broker.url)
    try:
        pub.publish(seed.topic, payloads[400:])
    finally:
        pub.close()
    wait_until(lambda: _stored(database_url) == 4_000, timeout_s=60)
    time.sleep(0.3)
    with psycopg.connect(database_url) as conn:
        _assert_exactly_once(conn, readings)

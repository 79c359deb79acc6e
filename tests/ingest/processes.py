"""``python -m ingest run`` as a real subprocess, for failure and scale-out tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psycopg

from deploy.localstack import free_port
from device_profiles.vocabulary import Kind
from device_profiles.wire import Reading
from tests.ingest.helpers import Publisher, Seed, batch_bytes, count, make_reading, seed_patient, wait_until

ROOT = Path(__file__).resolve().parents[2]
KINDS = [Kind.BLOOD_PRESSURE, Kind.GLUCOSE_CGM, Kind.WEIGHT, Kind.SPO2, Kind.TEMPERATURE]


class IngestProcess:
    """``python -m ingest run`` as a subprocess, with its metrics port."""

    def __init__(
        self,
        database_url: str,
        mqtt_url: str,
        client_id: str,
        log_path: Path,
        *,
        metrics_port: int | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.metrics_port = metrics_port or free_port()
        self.client_id = client_id
        full_env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": database_url,
            "MQTT_URL": mqtt_url,
            "EGENMON_INGEST_CLIENT_ID": client_id,
            "EGENMON_INGEST_METRICS_PORT": str(self.metrics_port),
            "EGENMON_INGEST_DB_RETRY_MAX_S": "1",
            # Small transactions, so a failure always lands between two of them.
            "EGENMON_INGEST_BATCH_MAX_MESSAGES": "50",
            **(env or {}),
        }
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ingest", "run"], cwd=ROOT, env=full_env, stdout=self._log, stderr=self._log
        )

    def health(self, port: int | None = None) -> dict[str, bool] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port or self.metrics_port}/healthz", timeout=2) as resp:
                return dict(json.loads(resp.read()))
        except (OSError, urllib.error.URLError):
            return None

    def wait_ready(self) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, "ingest exited"
            h = self.health()
            return bool(h and all(h.values()))

        wait_until(ready, timeout_s=30)

    def metric(self, name: str, port: int | None = None) -> float:
        with urllib.request.urlopen(f"http://127.0.0.1:{port or self.metrics_port}/metrics", timeout=5) as resp:
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


def reading_stream(
    n_readings: int, per_message: int, gateway_id: str, serial: str
) -> tuple[list[bytes], list[Reading]]:
    readings = [make_reading(KINDS[i % len(KINDS)], serial=serial, seq=i) for i in range(n_readings)]
    payloads = [
        batch_bytes(gateway_id, readings[i : i + per_message], seq=i) for i in range(0, n_readings, per_message)
    ]
    return payloads, readings


def assert_exactly_once(conn: psycopg.Connection[Any], readings: list[Reading]) -> None:
    ids = {r[0] for r in conn.execute("SELECT reading_id FROM reading_raw").fetchall()}
    assert ids == {r.reading_id for r in readings}
    expected_rows = sum(len(r.values) for r in readings)
    assert count(conn, "SELECT count(*) FROM observation") == expected_rows
    assert (
        count(conn, "SELECT count(*) FROM (SELECT DISTINCT reading_id, component FROM observation) d") == expected_rows
    )


def seed_gateway(database_url: str) -> Seed:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return seed_patient(conn)


def stored_count(database_url: str) -> int:
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=2) as conn:
            return count(conn, "SELECT count(*) FROM reading_raw")
    except psycopg.OperationalError:
        return -1


def publish_and_await(
    database_url: str, broker_url: str, topic: str, payloads: list[bytes], readings: list[Reading]
) -> None:
    """Publish everything at once; wait until all readings are stored, each exactly once."""
    pub = Publisher(broker_url)
    try:
        pub.publish(topic, payloads)
    finally:
        pub.close()
    wait_until(lambda: stored_count(database_url) == len(readings), timeout_s=60)
    with psycopg.connect(database_url) as conn:
        assert_exactly_once(conn, readings)

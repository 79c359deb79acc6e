"""Confirmation end to end over a real broker: gateway → ingest → alerting → "measure again" → gateway → repeat.

Real processes: ``python -m ingest run`` and ``python -m alerting run`` (with its feedback
publisher); the gateway side is the gateway's own outbox and MQTT publisher.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from deploy.localstack import free_port
from device_profiles.messages import FeedbackAck, FeedbackMessage
from device_profiles.vocabulary import Kind
from gateway.outbox import Outbox
from gateway.publisher import BrokerConfig, Publisher
from tests.ingest.helpers import make_reading, purge_session, seed_patient, wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@dataclass
class Home:
    """One patient's gateway: its outbox and publisher, and the messages it was sent."""

    patient_id: str
    gateway_id: str
    outbox: Outbox
    publisher: Publisher
    received: list[FeedbackMessage]
    seq: int = 0

    def measure(self, systolic: float, diastolic: float) -> None:
        self.seq += 1
        reading = make_reading(
            Kind.BLOOD_PRESSURE,
            serial=f"SN-{self.gateway_id[-5:]}",
            seq=self.seq,
            measured_at=datetime.now(UTC) - timedelta(seconds=1),
            values={"systolic": systolic, "diastolic": diastolic, "pulse": 72},
        )
        self.outbox.add([reading])
        batch = self.outbox.next_batch(100)
        assert batch is not None
        self.publisher.publish_batch(batch)


def _wait_healthy(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    def healthy() -> bool:
        assert proc.poll() is None, log.read_text()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
                return all(json.loads(resp.read()).values())
        except OSError:
            return False

    wait_until(healthy, timeout_s=30)


@pytest.fixture
def platform(database_url: str, mqtt_url: str, tmp_path: Path) -> Iterator[None]:
    """Ingest and alerting as the services they are, on the test database and broker."""
    ingest_id = f"ingest-confirm-{uuid.uuid4().hex[:8]}"
    ingest_port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "MQTT_URL": mqtt_url,
        "EGENMON_INGEST_CLIENT_ID": ingest_id,
        "EGENMON_INGEST_METRICS_PORT": str(ingest_port),
        "EGENMON_ALERTING_METRICS_PORT": "0",
        "EGENMON_ALERTING_SWEEP_INTERVAL_S": "3600",
        "EGENMON_ALERTING_FEEDBACK_POLL_S": "0.2",
        "EGENMON_ALERTING_MQTT_CLIENT_ID": f"alerting-confirm-{uuid.uuid4().hex[:8]}",
    }
    ingest_log, alerting_log = tmp_path / "ingest.log", tmp_path / "alerting.log"
    with ingest_log.open("wb") as out:
        ingest = subprocess.Popen([sys.executable, "-m", "ingest", "run"], cwd=ROOT, env=env, stdout=out, stderr=out)
    with alerting_log.open("wb") as out:
        alerting = subprocess.Popen(
            [sys.executable, "-m", "alerting", "run"], cwd=ROOT, env=env, stdout=out, stderr=out
        )
    try:
        _wait_healthy(ingest, ingest_port, ingest_log)
        wait_until(lambda: b"sweep done" in alerting_log.read_bytes(), timeout_s=30)
        yield
    finally:
        for proc in (alerting, ingest):
            proc.terminate()
        for proc in (alerting, ingest):
            proc.wait(timeout=15)
        purge_session(mqtt_url, ingest_id)


def _home(db: psycopg.Connection[Any], mqtt_url: str, tmp_path: Path) -> Home:
    seed = seed_patient(db)
    db.execute(
        "INSERT INTO care_plan (patient_id, version, conditions) VALUES (%s, 1, %s)",
        (seed.patient_id, ["hypertension"]),
    )
    received: list[FeedbackMessage] = []
    outbox = Outbox(tmp_path / f"{seed.gateway_id}.db")
    publisher = Publisher(BrokerConfig(mqtt_url, seed.gateway_id), outbox, on_feedback=received.append)
    return Home(str(seed.patient_id), seed.gateway_id, outbox, publisher, received)


def _alert(db: psycopg.Connection[Any], pid: str) -> tuple[Any, ...] | None:
    return db.execute(
        "SELECT id, status, shown_to_staff_at IS NOT NULL, resolution_reason FROM alert WHERE patient_id = %s",
        (pid,),
    ).fetchone()


def test_measure_again_round_trip_confirms_or_clears(
    db: psycopg.Connection[Any], mqtt_url: str, tmp_path: Path, platform: None
) -> None:
    confirmed, cleared = _home(db, mqtt_url, tmp_path), _home(db, mqtt_url, tmp_path)
    for home in (confirmed, cleared):
        home.publisher.start()
        assert home.publisher.connected.wait(10)
    try:
        for home in (confirmed, cleared):
            home.measure(186, 114)  # one high session: H3
        for home in (confirmed, cleared):
            # The platform asks the patient, through their own gateway, to measure again.
            wait_until(lambda h=home: len(h.received) >= 2, timeout_s=15)  # type: ignore[misc]
            # First the receipt of the reading, then the request about it.
            assert home.received[0].level == "receipt"
            assert home.received[0].message_sv == "Blodtrycket 186/114 är mottaget."
            msg = home.received[1]
            assert msg.level == "measure_again"
            assert "mät igen" in msg.message_sv
            row = _alert(db, home.patient_id)
            assert row is not None
            assert row[1:3] == ("awaiting_confirmation", False)  # staff see nothing yet
            home.publisher.publish_feedback_ack(FeedbackAck(id=msg.id, state="seen", at=datetime.now(UTC)))
        confirmed.measure(188, 116)
        cleared.measure(128, 82)
        opened = wait_until(
            lambda: (r := _alert(db, confirmed.patient_id)) is not None and r[1] == "open" and r, timeout_s=15
        )
        assert opened[2] is True  # in the staff queue now
        closed = wait_until(
            lambda: (r := _alert(db, cleared.patient_id)) is not None and r[1] == "resolved" and r, timeout_s=15
        )
        assert closed[2:] == (False, "not_confirmed")  # never reached staff
        for home, last in ((confirmed, "confirmed"), (cleared, "not_confirmed")):
            row = _alert(db, home.patient_id)
            assert row is not None
            events = [
                r[0] for r in db.execute("SELECT event FROM alert_event WHERE alert_id = %s ORDER BY id", (row[0],))
            ]
            assert events[:2] == ["opened", "confirmation_requested"]
            assert "message_sent" in events
            assert last in events
        # The "seen" ack reached the timeline of the confirmed alert.
        assert wait_until(
            lambda: (
                db.execute(
                    "SELECT seen_at FROM patient_message WHERE patient_id = %s AND level = 'measure_again'",
                    (confirmed.patient_id,),
                ).fetchone()
                != (None,)
            ),
            timeout_s=10,
        )
    finally:
        for home in (confirmed, cleared):
            home.publisher.stop()
            home.outbox.close()

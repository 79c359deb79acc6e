"""Measurement receipts: stored reading → NOTIFY → alerting → the gateway → its ack."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

from alerting.receipts import backlog_text, queue_receipts, receipt_text
from alerting.service import AlertingService
from alerting.settings import AlertingSettings
from device_profiles.messages import FeedbackAck, FeedbackMessage
from gateway.outbox import Outbox
from gateway.publisher import BrokerConfig, Publisher
from schema.notify import NEW_READINGS_CHANNEL
from tests.alerting.test_feedback import wait_for
from tests.ingest.helpers import seed_patient


def add_reading(
    db: psycopg.Connection[Any],
    pid: str,
    gw: str,
    kind: str,
    values: dict[str, float | None],
    ago: timedelta = timedelta(0),
    *,
    status: str = "valid",
    censored: str | None = None,
) -> None:
    rid = str(uuid.uuid4())
    at = datetime.now(UTC) - ago
    for component, value in values.items():
        db.execute(
            "INSERT INTO observation (reading_id, component, measured_at, patient_id, gateway_id, device_address, "
            "kind, value, unit, censored, status, received_at) "
            "VALUES (%s, %s, %s, %s, %s, 'A0:B1:C2:D3:E4:F5', %s, %s, 'x', %s, %s, now())",
            (rid, component, at, pid, gw, kind, value, censored, status),
        )


def patient(db: psycopg.Connection[Any]) -> tuple[str, str]:
    seed = seed_patient(db)
    db.execute(
        "INSERT INTO care_plan (patient_id, version, conditions) VALUES (%s, 1, %s)",
        (seed.patient_id, ["hypertension"]),
    )
    return str(seed.patient_id), seed.gateway_id


def receipts(db: psycopg.Connection[Any], pid: str) -> list[tuple[str | None, str]]:
    return [
        (r[0], r[1])
        for r in db.execute(
            "SELECT kind, message_sv FROM patient_message WHERE patient_id = %s AND level = 'receipt' "
            "ORDER BY created_at, kind NULLS FIRST",
            (pid,),
        )
    ]


def test_texts_are_swedish_with_decimal_comma() -> None:
    assert (
        receipt_text("blood_pressure", {"systolic": 142.0, "diastolic": 88.4}, {}) == "Blodtrycket 142/88 är mottaget."
    )
    assert receipt_text("weight", {"weight": 82.44}, {}) == "Vikten 82,4 kg är mottagen."
    assert receipt_text("glucose_capillary", {"glucose": 6.2}, {}) == "Blodsockret 6,2 är mottaget."
    assert receipt_text("glucose_capillary", {"glucose": None}, {"glucose": "high"}) == (
        "Blodsockret (över mätområdet) är mottaget."
    )
    assert receipt_text("spo2", {"spo2": 96.0}, {}) == "Syremättnaden 96 % är mottagen."
    assert receipt_text("temperature", {"temperature": 37.25}, {}) == "Temperaturen 37,2 °C är mottagen."
    assert receipt_text("blood_pressure", {"systolic": 142.0}, {}) is None  # half a reading
    assert receipt_text("glucose_cgm", {"glucose_interstitial": 6.0}, {}) is None
    assert backlog_text(1) == "1 mätning har kommit fram."
    assert backlog_text(3) == "3 mätningar har kommit fram."


def test_newest_per_kind_once_no_cgm_no_rejected_and_backlog_summarised(db: psycopg.Connection[Any]) -> None:
    pid, gw = patient(db)
    add_reading(db, pid, gw, "blood_pressure", {"systolic": 150, "diastolic": 95, "pulse": 70}, timedelta(minutes=3))
    add_reading(db, pid, gw, "blood_pressure", {"systolic": 142, "diastolic": 88, "pulse": 68})
    add_reading(db, pid, gw, "glucose_cgm", {"glucose_interstitial": 5.5})
    add_reading(db, pid, gw, "weight", {"weight": 300.0}, status="rejected")
    assert queue_receipts(db, [pid]) == 1
    assert receipts(db, pid) == [("blood_pressure", "Blodtrycket 142/88 är mottaget.")]
    # The same notification again (or a second alerting process): nothing new to receipt.
    assert queue_receipts(db, [pid]) == 0
    # A gateway back after a day offline uploads yesterday's readings and one from now.
    for h in (26, 25, 24):
        add_reading(db, pid, gw, "weight", {"weight": 82.0 + h / 10}, timedelta(hours=h))
    add_reading(db, pid, gw, "glucose_capillary", {"glucose": 6.2}, timedelta(minutes=1))
    assert queue_receipts(db, [pid]) == 2
    assert receipts(db, pid)[1:] == [
        (None, "3 mätningar har kommit fram."),
        ("glucose_capillary", "Blodsockret 6,2 är mottaget."),
    ]
    row = db.execute(
        "SELECT gateway_id, expires_at - created_at FROM patient_message WHERE patient_id = %s AND level = 'receipt' "
        "LIMIT 1",
        (pid,),
    ).fetchone()
    assert row == (gw, timedelta(minutes=10))


def _listening(db: psycopg.Connection[Any]) -> bool:
    row = db.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = %s",
        (f"LISTEN {NEW_READINGS_CHANNEL}",),
    ).fetchone()
    return bool(row and row[0])


def _notify(db: psycopg.Connection[Any], pid: str) -> None:
    db.execute("SELECT pg_notify(%s, %s)", (NEW_READINGS_CHANNEL, json.dumps({"patients": [pid]})))


def test_a_stored_reading_is_receipted_on_the_gateway_and_acked(
    db: psycopg.Connection[Any], database_url: str, mqtt_url: str, tmp_path: Path
) -> None:
    pid, gw = patient(db)
    received: list[FeedbackMessage] = []
    gateway = Publisher(BrokerConfig(mqtt_url, gw), Outbox(tmp_path / "outbox.db"), on_feedback=received.append)
    gateway.start()
    service = AlertingService(
        AlertingSettings(
            database_url=database_url,
            mqtt_url=mqtt_url,
            metrics_port=0,
            replay_poll_s=0,
            sweep_interval_s=3600,
            feedback_poll_s=0.2,
        )
    )
    worker = threading.Thread(target=service.run, daemon=True)
    worker.start()
    try:
        assert gateway.connected.wait(10)
        assert wait_for(lambda: _listening(db))
        add_reading(db, pid, gw, "blood_pressure", {"systolic": 142, "diastolic": 88})
        stored = time.monotonic()
        _notify(db, pid)
        assert wait_for(lambda: received, timeout=5)
        assert time.monotonic() - stored < 3
        msg = received[0]
        assert (msg.level, msg.kind, msg.message_sv) == ("receipt", "blood_pressure", "Blodtrycket 142/88 är mottaget.")
        gateway.publish_feedback_ack(FeedbackAck(id=msg.id, state="delivered", at=datetime.now(UTC)))
        assert wait_for(
            lambda: (
                db.execute("SELECT delivered_at FROM patient_message WHERE id::text = %s", (msg.id,)).fetchone()
                != (None,)
            )
        )
        # CGM every five minutes: no receipt. The weight after it is the next message.
        add_reading(db, pid, gw, "glucose_cgm", {"glucose_interstitial": 6.1})
        _notify(db, pid)
        time.sleep(1.0)
        add_reading(db, pid, gw, "weight", {"weight": 82.4})
        _notify(db, pid)
        assert wait_for(lambda: len(received) >= 2, timeout=5)
        assert received[1].message_sv == "Vikten 82,4 kg är mottagen."
        # A backlog upload: one summary, not a stream of stale values.
        for h in (5, 4, 3):
            add_reading(db, pid, gw, "blood_pressure", {"systolic": 120, "diastolic": 80}, timedelta(hours=h))
        _notify(db, pid)
        assert wait_for(lambda: len(received) >= 3, timeout=5)
        assert received[2].message_sv == "3 mätningar har kommit fram."
        assert received[2].kind is None
        time.sleep(0.5)
        assert len(received) == 3
    finally:
        service.stop_event.set()
        worker.join(timeout=15)
        gateway.stop()
    assert [k for k, _ in receipts(db, pid)] == ["blood_pressure", "weight", None]

"""Messages to patients over a real broker: alerting's publisher → the gateway's publisher → ack."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from alerting.feedback import FeedbackPublisher, gateway_of, record_ack
from alerting.service import evaluate_and_store
from alerting.settings import AlertingSettings
from device_profiles.messages import FeedbackAck, FeedbackMessage
from gateway.outbox import Outbox
from gateway.publisher import BrokerConfig, Publisher
from tests.alerting.dbdata import add_observation
from tests.alerting.helpers import MIN
from tests.ingest.helpers import seed_patient


def wait_for(cond: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return bool(cond())


def copd_patient(db: psycopg.Connection[Any]) -> tuple[str, str]:
    seed = seed_patient(db)
    db.execute(
        "INSERT INTO care_plan (patient_id, version, conditions) VALUES (%s, 1, %s)", (seed.patient_id, ["copd"])
    )
    return str(seed.patient_id), seed.gateway_id


def test_critical_call_1177_reaches_the_gateway_and_its_ack_the_timeline(
    db: psycopg.Connection[Any], database_url: str, mqtt_url: str, tmp_path: Path
) -> None:
    pid, gw = copd_patient(db)
    now = time.time()
    for k, v in enumerate([84.0, 83.0]):  # confirmed SpO2 < 85 %: C1 critical
        add_observation(db, pid, "spo2", "spo2", now - 10 * MIN + k * 3 * MIN, v, unit="%")
    evaluate_and_store(db, [pid], now)
    row = db.execute("SELECT gateway_id, level, alert_id FROM patient_message WHERE patient_id = %s", (pid,)).fetchone()
    assert row is not None
    assert row[:2] == (gw, "call_1177_or_112")
    alert_id = row[2]
    assert alert_id is not None  # on the critical event's timeline
    received: list[FeedbackMessage] = []
    gateway = Publisher(BrokerConfig(mqtt_url, gw), Outbox(tmp_path / "outbox.db"), on_feedback=received.append)
    gateway.start()
    platform = FeedbackPublisher(AlertingSettings(database_url=database_url, mqtt_url=mqtt_url, feedback_poll_s=0.1))
    worker = threading.Thread(target=platform.run, daemon=True)
    try:
        assert gateway.connected.wait(10)
        worker.start()
        assert wait_for(lambda: received)
        msg = received[0]
        assert msg.level == "call_1177_or_112"
        assert "112" in msg.message_sv
        sent = db.execute("SELECT sent_at FROM patient_message WHERE id::text = %s", (msg.id,)).fetchone()
        assert sent is not None
        assert sent[0] is not None  # marked sent only after the broker's PUBACK
        # The gateway says it reached the patient; the platform records it.
        gateway.publish_feedback_ack(FeedbackAck(id=msg.id, state="delivered", at=msg.created_at))
        assert wait_for(
            lambda: (
                db.execute("SELECT delivered_at FROM patient_message WHERE id::text = %s", (msg.id,)).fetchone()
                != (None,)
            )
        )
    finally:
        platform.stop()
        worker.join(timeout=10)
        gateway.stop()
    # Sent once, and both steps are on the alert's timeline.
    assert len(received) == 1
    timeline = [r[0] for r in db.execute("SELECT event FROM alert_event WHERE alert_id = %s ORDER BY id", (alert_id,))]
    assert timeline[0] == "opened"
    assert "message_sent" in timeline
    assert "message_delivered" in timeline


def test_an_ack_counts_only_from_the_gateway_the_message_went_to(db: psycopg.Connection[Any]) -> None:
    pid, gw = copd_patient(db)
    other = seed_patient(db).gateway_id
    mid = db.execute(
        "INSERT INTO patient_message (patient_id, gateway_id, level, message_sv, expires_at) "
        "VALUES (%s, %s, 'reminder', 'Kom ihåg dagens mätning.', now() + interval '1 hour') RETURNING id::text",
        (pid, gw),
    ).fetchone()
    assert mid is not None
    ack = json.dumps({"schema": 1, "id": mid[0], "state": "seen", "at": "2026-12-02T10:00:00+00:00"}).encode()
    assert record_ack(db, other, ack) is False  # another gateway cannot confirm it
    assert record_ack(db, gw, b"{not json") is False
    assert record_ack(db, gw, ack) is True
    seen = db.execute("SELECT seen_at FROM patient_message WHERE id::text = %s", (mid[0],)).fetchone()
    assert seen is not None
    assert seen[0] is not None
    assert gateway_of(f"egenmon/v1/gw/{gw}/feedback/ack") == gw
    assert gateway_of(f"egenmon/v1/gw/{gw}/status") is None

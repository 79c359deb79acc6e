"""The alerting service end to end: readings committed + NOTIFY → alert row; and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import prometheus_client
import psycopg
import pytest

from alerting.service import AlertingService, evaluate_and_store, parse_payload
from alerting.settings import AlertingSettings
from deploy.localstack import free_port
from device_profiles.vocabulary import Kind
from schema.notify import NEW_READINGS_CHANNEL
from tests.alerting.dbdata import STAFF_LOWS, add_observation, make_patient
from tests.alerting.helpers import MIN
from tests.ingest.helpers import batch_bytes, make_reading, publish, purge_session, seed_patient, wait_until

ROOT = Path(__file__).resolve().parents[2]


def _env(database_url: str, metrics_port: int = 0) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": database_url,
        "EGENMON_ALERTING_METRICS_PORT": str(metrics_port),
        "EGENMON_ALERTING_SWEEP_INTERVAL_S": "3600",
    }


@pytest.fixture
def metrics_port() -> int:
    return free_port()


@pytest.fixture
def service(database_url: str, tmp_path: Path, metrics_port: int) -> Iterator[Path]:
    log = tmp_path / "alerting.log"
    env = _env(database_url, metrics_port)
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "alerting", "run"], cwd=ROOT, env=env, stderr=err)
    try:
        deadline = time.monotonic() + 20
        while "sweep done" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "service did not start: " + log.read_text()
            time.sleep(0.05)
        yield log
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.slow
def test_notify_to_alert_within_a_second(db: psycopg.Connection[Any], service: Path, metrics_port: int) -> None:
    pid = make_patient(db, ["diabetes_t2"], thresholds=STAFF_LOWS)
    now = time.time()
    with db.transaction():
        add_observation(db, pid, "glucose_capillary", "glucose", now - MIN, 2.6)
        db.execute("SELECT pg_notify(%s, %s)", (NEW_READINGS_CHANNEL, json.dumps({"patients": [pid]})))
    committed = time.monotonic()
    row = None
    while time.monotonic() - committed < 5 and row is None:
        row = db.execute("SELECT rule_id, severity FROM alert WHERE patient_id = %s", (pid,)).fetchone()
        if row is None:
            time.sleep(0.01)
    elapsed = time.monotonic() - committed
    assert row == ("D4", "high")
    print(f"commit → alert row: {elapsed * 1e3:.0f} ms")
    assert elapsed < 2.0  # the target is 1 s; asserted with margin for a loaded CI machine
    # The log line follows the commit.
    wait_until(lambda: "trigger=notify" in service.read_text(), timeout_s=5)
    lines = [json.loads(x) for x in service.read_text().splitlines() if x.startswith("{")]
    assert any("trigger=notify" in x["msg"] for x in lines)
    assert all("Testsson" not in x["msg"] for x in lines)  # no names in logs
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert 'egenmon_alerting_evaluations_total{trigger="notify"} 1.0' in text
    assert 'egenmon_alerting_findings_total{rule="D4",severity="high"}' in text
    assert "egenmon_alerting_listening 1.0" in text


@pytest.mark.slow
def test_malformed_notification_does_not_stop_the_service(db: psycopg.Connection[Any], service: Path) -> None:
    db.execute("SELECT pg_notify(%s, 'not json')", (NEW_READINGS_CHANNEL,))
    pid = make_patient(db, ["diabetes_t2"], thresholds=STAFF_LOWS)
    with db.transaction():
        add_observation(db, pid, "glucose_capillary", "glucose", time.time() - MIN, 3.5)
        db.execute("SELECT pg_notify(%s, %s)", (NEW_READINGS_CHANNEL, json.dumps({"patients": [pid]})))
    deadline = time.monotonic() + 5
    while db.execute("SELECT 1 FROM alert WHERE patient_id = %s", (pid,)).fetchone() is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert "malformed" in service.read_text()


def test_parse_payload() -> None:
    assert parse_payload('{"patients": ["a", "b"]}') == ["a", "b"]
    assert parse_payload('{"patients": "a"}') == []
    assert parse_payload("{}") == []


def test_cli_evaluate_and_explain(db: psycopg.Connection[Any], database_url: str) -> None:
    pid = make_patient(
        db, ["diabetes_t2"], pseudonym="P-CLI-1", thresholds={**STAFF_LOWS, "D4": {"medium_below_mmol_l": 4.2}}
    )
    add_observation(db, pid, "glucose_capillary", "glucose", time.time() - MIN, 4.0)
    out = subprocess.run(
        [sys.executable, "-m", "alerting", "evaluate", "--patient", "P-CLI-1"],
        cwd=ROOT,
        env=_env(database_url),
        capture_output=True,
        text=True,
        check=True,
    )
    evidence = json.loads(out.stdout.splitlines()[0])
    assert evidence["rule"] == "D4"
    assert evidence["thresholds"]["medium_below_mmol_l"] == {"value": 4.2, "source": "care_plan"}
    evaluate_and_store(db, [pid])
    (alert_id,) = db.execute("SELECT id FROM alert WHERE patient_id = %s", (pid,)).fetchone() or (None,)
    out = subprocess.run(
        [sys.executable, "-m", "alerting", "explain", str(alert_id)],
        cwd=ROOT,
        env=_env(database_url),
        capture_output=True,
        text=True,
        check=True,
    )
    assert "D4" in out.stdout
    assert "medium_below_mmol_l = 4.2 (care_plan)" in out.stdout
    assert "glucose_capillary.glucose  4.0" in out.stdout
    assert "opened" in out.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "alerting", "explain", "999999"],
        cwd=ROOT,
        env=_env(database_url),
        capture_output=True,
        check=False,
        text=True,
    )
    assert missing.returncode == 1


@pytest.mark.slow
def test_mqtt_through_ingest_to_alert(
    db: psycopg.Connection[Any], database_url: str, mqtt_url: str, service: Path, tmp_path: Path
) -> None:
    """A reading published on MQTT → ``python -m ingest run`` → NOTIFY → alert row."""
    seed = seed_patient(db)
    db.execute(
        "INSERT INTO care_plan (patient_id, version, conditions) VALUES (%s, 1, %s)", (seed.patient_id, ["diabetes_t2"])
    )
    client_id = f"ingest-alerting-{uuid.uuid4().hex[:8]}"
    metrics_port = free_port()
    env = {
        **_env(database_url),
        "MQTT_URL": mqtt_url,
        "EGENMON_INGEST_CLIENT_ID": client_id,
        "EGENMON_INGEST_METRICS_PORT": str(metrics_port),
    }
    with (tmp_path / "ingest.log").open("wb") as log:
        ingest = subprocess.Popen([sys.executable, "-m", "ingest", "run"], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:

        def healthy() -> bool:
            assert ingest.poll() is None, (tmp_path / "ingest.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/healthz", timeout=1) as resp:
                    return all(json.loads(resp.read()).values())
            except OSError:
                return False

        wait_until(healthy, timeout_s=30)
        now = datetime.now(UTC)
        reading = make_reading(
            Kind.GLUCOSE_CGM,
            serial="SN-CGM",
            seq=1,
            measured_at=now - timedelta(minutes=1),
            values={"glucose_interstitial": 2.6},
        )
        earlier = [
            make_reading(
                Kind.GLUCOSE_CGM,
                serial="SN-CGM",
                seq=k + 2,
                measured_at=now - timedelta(minutes=1 + 5 * k),
                values={"glucose_interstitial": 2.7},
            )
            for k in range(1, 4)
        ]
        started = time.monotonic()
        publish(mqtt_url, seed.topic, [batch_bytes(seed.gateway_id, [*earlier, reading])])
        row = wait_until(
            lambda: db.execute(
                "SELECT severity FROM alert WHERE patient_id = %s AND rule_id = 'D2'", (seed.patient_id,)
            ).fetchone(),
            timeout_s=10,
            interval_s=0.01,
        )
        elapsed = time.monotonic() - started
        print(f"MQTT publish → alert row: {elapsed * 1e3:.0f} ms")
        assert row == ("high",)
        assert elapsed < 3.0  # target 1 s; generous for a shared CI machine
    finally:
        ingest.terminate()
        ingest.wait(timeout=15)
        purge_session(mqtt_url, client_id)


def test_sweep_evaluates_everyone_in_chunks(db: psycopg.Connection[Any], database_url: str) -> None:
    """Time-based rules fire without new readings: the sweep covers every active patient."""
    pids = [make_patient(db, ["diabetes_t1"], schedule={"glucose_cgm": 288}) for _ in range(3)]
    add_observation(db, pids[0], "glucose_cgm", "glucose_interstitial", time.time() - 30 * 3600, 6.0)
    # The first patient's gateway is online and hears the sensor: the gap is the patient's
    # (missing-data triage); the others have no gateway at all.
    db.execute("INSERT INTO gateway (id, online, last_status, last_status_at) VALUES ('gw-sweep-1', true, '{}', now())")
    db.execute(
        "INSERT INTO gateway_assignment (gateway_id, patient_id, valid) "
        "VALUES ('gw-sweep-1', %s, tstzrange(now() - interval '30 days', NULL))",
        (pids[0],),
    )
    db.execute(
        "INSERT INTO device (gateway_id, address, model, kind, battery_pct, last_seen_at) "
        "VALUES ('gw-sweep-1', 'AA:00', 'CGM-1', 'glucose_cgm', 90, now() - interval '5 minutes')"
    )
    settings = AlertingSettings(database_url=database_url, sweep_chunk=2, metrics_port=0)
    before = time.time()
    AlertingService(settings).sweep(db)
    # The health gauge documented in alerting/README.md says when the last sweep finished.
    swept_at = prometheus_client.REGISTRY.get_sample_value("egenmon_alerting_last_sweep_timestamp_seconds")
    assert swept_at is not None
    assert swept_at >= before
    found = db.execute("SELECT patient_id::text, severity, route FROM alert_finding WHERE rule_id = 'D10'").fetchall()
    assert {r[0]: (r[1], r[2]) for r in found} == {
        pids[0]: ("info", "patient"),
        pids[1]: ("low", "staff"),
        pids[2]: ("low", "staff"),
    }
    # The 30-hour gap is the patient's to fix (a reminder); staff see the 72-hour gaps only.
    rows = db.execute(
        "SELECT patient_id::text, severity FROM alert WHERE rule_id = 'D10' AND shown_to_staff_at IS NOT NULL"
    ).fetchall()
    assert dict(rows) == {pids[1]: "low", pids[2]: "low"}
    reminders = db.execute("SELECT patient_id::text, level FROM patient_message").fetchall()
    assert reminders == [(pids[0], "reminder")]

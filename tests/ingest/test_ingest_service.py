"""Ingest end to end, in process: real Mosquitto (the session's), real PostgreSQL."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from device_profiles.messages import OFFLINE_PAYLOAD, DeviceStatus, GatewayStatus
from device_profiles.vocabulary import KINDS, Kind
from device_profiles.wire import readings_topic, status_topic
from ingest.pipeline import Incoming, prepare
from ingest.service import IngestService
from ingest.settings import IngestSettings
from schema.notify import NEW_READINGS_CHANNEL
from tests.ingest.helpers import (
    SAMPLE_VALUES,
    T0,
    Seed,
    batch_bytes,
    count,
    make_reading,
    publish,
    seed_patient,
    wait_until,
)

Db = psycopg.Connection[Any]
StartIngest = Callable[..., IngestService]


def _readings(db: Db) -> int:
    return count(db, "SELECT count(*) FROM reading_raw")


def test_every_kind_is_stored_with_patient_units_and_raw(
    db: Db, seeded: Seed, start_ingest: StartIngest, mqtt_url: str
) -> None:
    start_ingest()
    readings = [make_reading(kind, serial=f"SN-{i}", seq=i) for i, kind in enumerate(Kind)]
    publish(mqtt_url, seeded.topic, [batch_bytes(seeded.gateway_id, [r]) for r in readings])
    wait_until(lambda: _readings(db) == len(readings))
    for seq, r in enumerate(readings):
        rows = db.execute(
            "SELECT component, value, unit, patient_id, status, kind, gateway_id"
            " FROM observation WHERE reading_id = %s",
            (r.reading_id,),
        ).fetchall()
        assert {row[0] for row in rows} == set(SAMPLE_VALUES[r.kind]), r.kind
        for component, value, unit, patient, status, kind, gw in rows:
            assert value == pytest.approx(SAMPLE_VALUES[r.kind][component])
            assert unit == r.values[component].unit.value
            assert (patient, status, kind, gw) == (seeded.patient_id, "valid", r.kind.value, seeded.gateway_id)
        raw = db.execute(
            "SELECT raw, device->>'serial' FROM reading_raw WHERE reading_id = %s", (r.reading_id,)
        ).fetchone()
        assert raw is not None
        assert (bytes(raw[0]), raw[1]) == (f"{r.kind}:{seq}".encode(), r.device.serial)
    assert set(KINDS) == {r.kind for r in readings}
    # The device table follows the readings (battery, last seen).
    assert count(db, "SELECT count(*) FROM device WHERE gateway_id = %s", seeded.gateway_id) == len(readings)


def test_republishing_the_same_batch_stores_each_reading_once(
    db: Db, seeded: Seed, start_ingest: StartIngest, mqtt_url: str
) -> None:
    service = start_ingest()
    batch = batch_bytes(seeded.gateway_id, [make_reading(Kind.BLOOD_PRESSURE, seq=i) for i in range(20)])
    publish(mqtt_url, seeded.topic, [batch, batch])
    wait_until(lambda: service.metrics.acks._value.get() >= 2)
    publish(mqtt_url, seeded.topic, [batch])
    wait_until(lambda: service.metrics.acks._value.get() >= 3)
    assert _readings(db) == 20
    assert count(db, "SELECT count(*) FROM observation") == 20 * 4
    assert service.metrics.duplicates._value.get() == 40


def _neighbours(seed: Seed, first: int) -> list[Any]:
    return [make_reading(Kind.GLUCOSE_CAPILLARY, serial="SN-good", seq=first + i) for i in range(2)]


def test_bad_messages_become_dead_letters_and_good_ones_are_stored(
    db: Db, seeded: Seed, start_ingest: StartIngest, mqtt_url: str
) -> None:
    start_ingest()
    gw = seeded.gateway_id
    good_before = batch_bytes(gw, _neighbours(seeded, 0))
    good_after = batch_bytes(gw, _neighbours(seeded, 10))
    ok = json.loads(batch_bytes(gw, [make_reading(Kind.WEIGHT)]))
    cases: dict[str, bytes] = {
        "bad_json": b'{"schema": 1, "gateway_id": ',
        "unsupported_schema_version": json.dumps({**ok, "schema": 2}).encode(),
        "bad_schema": json.dumps({k: v for k, v in ok.items() if k != "sent_at"}).encode(),
        "gateway_id_mismatch": json.dumps({**ok, "gateway_id": "gw-someone-else"}).encode(),
    }
    wrong_types = {**ok, "seq": "seven"}
    for reason, payload in cases.items():
        publish(mqtt_url, seeded.topic, [good_before, payload, good_after])
        wait_until(lambda r=reason: count(db, "SELECT count(*) FROM dead_letter WHERE reason = %s", r) == 1)
        row = db.execute(
            "SELECT topic, gateway_id, payload, detail FROM dead_letter WHERE reason = %s", (reason,)
        ).fetchone()
        assert row is not None
        assert row[0] == seeded.topic
        assert bytes(row[2]) == payload
    publish(mqtt_url, seeded.topic, [json.dumps(wrong_types).encode()])
    wait_until(lambda: count(db, "SELECT count(*) FROM dead_letter WHERE reason = 'bad_schema'") == 2)
    assert count(db, "SELECT count(*) FROM dead_letter WHERE detail LIKE %s", "%seq%") >= 1
    # The neighbours of every bad message were stored (re-published ones only once).
    assert _readings(db) == 4


def test_bad_readings_are_dead_letters_and_their_neighbours_are_stored(
    db: Db, seeded: Seed, start_ingest: StartIngest, mqtt_url: str
) -> None:
    start_ingest()
    doc = json.loads(batch_bytes(seeded.gateway_id, [make_reading(Kind.SPO2, seq=i) for i in range(4)]))
    doc["readings"][1]["values"]["spo2"]["unit"] = "mmol/L"  # wrong unit for the component
    del doc["readings"][2]["measured_at"]  # missing field
    publish(mqtt_url, seeded.topic, [json.dumps(doc).encode()])
    wait_until(lambda: count(db, "SELECT count(*) FROM dead_letter") == 2)
    rows = db.execute("SELECT reason, reading_index, payload FROM dead_letter ORDER BY reading_index").fetchall()
    assert [(r[0], r[1]) for r in rows] == [("bad_reading", 1), ("bad_reading", 2)]
    assert json.loads(bytes(rows[0][2]))["reading_id"] == doc["readings"][1]["reading_id"]
    wait_until(lambda: _readings(db) == 2)


def test_unknown_and_unassigned_gateways_are_dead_letters(db: Db, start_ingest: StartIngest, mqtt_url: str) -> None:
    start_ingest()
    # Assigned only from T0 + 1 day: a reading measured at T0 has no patient.
    later = seed_patient(db, valid_from=T0 + timedelta(days=1))
    unknown = "gw-never-registered"
    publish(mqtt_url, readings_topic(unknown), [batch_bytes(unknown, [make_reading(Kind.TEMPERATURE)])])
    early, late = (
        make_reading(Kind.TEMPERATURE, seq=1),
        make_reading(Kind.TEMPERATURE, seq=2, measured_at=T0 + timedelta(days=2)),
    )
    publish(mqtt_url, later.topic, [batch_bytes(later.gateway_id, [early, late])])
    wait_until(lambda: count(db, "SELECT count(*) FROM dead_letter") == 2)
    reasons = dict(db.execute("SELECT reason, gateway_id FROM dead_letter").fetchall())
    assert reasons == {"unknown_gateway": unknown, "unassigned_gateway": later.gateway_id}
    payload = db.execute("SELECT payload FROM dead_letter WHERE reason = 'unassigned_gateway'").fetchone()
    assert payload
    assert json.loads(bytes(payload[0]))["reading_id"] == str(early.reading_id)
    wait_until(lambda: _readings(db) == 1)
    assert count(db, "SELECT count(*) FROM observation WHERE reading_id = %s", late.reading_id) == 1


def test_implausible_readings_are_stored_rejected_and_low_spo2_flagged(
    db: Db, seeded: Seed, start_ingest: StartIngest, mqtt_url: str
) -> None:
    start_ingest()
    bp_bad = make_reading(Kind.BLOOD_PRESSURE, seq=1, values={"systolic": 80, "diastolic": 85})
    spo2_low = make_reading(Kind.SPO2, seq=2, values={"spo2": 62})
    spo2_impossible = make_reading(Kind.SPO2, seq=3, values={"spo2": 40})
    day1 = T0 - timedelta(days=1)
    weight_yesterday = make_reading(Kind.WEIGHT, serial="SN-w", seq=4, measured_at=day1, values={"weight": 80.0})
    weight_other_person = make_reading(Kind.WEIGHT, serial="SN-w", seq=5, measured_at=T0, values={"weight": 91.0})
    weight_ok = make_reading(
        Kind.WEIGHT, serial="SN-w", seq=6, measured_at=T0 + timedelta(hours=1), values={"weight": 81.0}
    )
    publish(
        mqtt_url, seeded.topic, [batch_bytes(seeded.gateway_id, [bp_bad, spo2_low, spo2_impossible, weight_yesterday])]
    )
    wait_until(lambda: _readings(db) == 4)
    publish(mqtt_url, seeded.topic, [batch_bytes(seeded.gateway_id, [weight_other_person, weight_ok])])
    wait_until(lambda: _readings(db) == 6)

    def status_of(r: Any) -> tuple[str, str | None]:
        row = db.execute(
            "SELECT DISTINCT status, reject_reason FROM observation WHERE reading_id = %s", (r.reading_id,)
        ).fetchall()
        assert len(row) == 1
        return row[0][0], row[0][1]

    assert status_of(bp_bad)[0] == "rejected"
    assert "systolic not above diastolic" in (status_of(bp_bad)[1] or "")
    assert status_of(spo2_low)[0] == "flagged"
    assert status_of(spo2_impossible)[0] == "rejected"
    assert status_of(weight_yesterday) == ("valid", None)
    status, reason = status_of(weight_other_person)
    assert status == "rejected"
    assert "previous day" in (reason or "")
    assert status_of(weight_ok) == ("valid", None)


def test_notify_names_the_patient_after_commit(
    db: Db, database_url: str, seeded: Seed, start_ingest: StartIngest, mqtt_url: str
) -> None:
    start_ingest()
    other = seed_patient(db)
    listener = psycopg.connect(database_url, autocommit=True)
    listener.execute(f"LISTEN {NEW_READINGS_CHANNEL}")
    publish(mqtt_url, seeded.topic, [batch_bytes(seeded.gateway_id, [make_reading(Kind.GLUCOSE_CGM)])])
    publish(mqtt_url, other.topic, [batch_bytes(other.gateway_id, [make_reading(Kind.GLUCOSE_CGM, serial="SN-2")])])
    named: set[str] = set()
    with listener:
        for note in listener.notifies(timeout=20):
            assert note.channel == NEW_READINGS_CHANNEL
            named.update(json.loads(note.payload)["patients"])
            # Sent after commit: the rows are visible to another connection already.
            assert _readings(db) >= 1
            if len(named) >= 2:
                break
    assert named == {str(seeded.patient_id), str(other.patient_id)}


def test_gateway_status_and_offline_will_update_gateway_and_devices(
    db: Db, seeded: Seed, start_ingest: StartIngest, mqtt_url: str
) -> None:
    start_ingest()
    sent = datetime.now(UTC).replace(microsecond=0)
    status = GatewayStatus(
        gateway_id=seeded.gateway_id,
        sent_at=sent,
        version="1.0.0",
        uptime_s=12,
        outbox_depth=3,
        outbox_capacity=10_000,
        devices=[DeviceStatus(address="AA:BB:CC:00:00:01", model="BP7000", kind="blood_pressure", battery_pct=41)],
    )
    topic = status_topic(seeded.gateway_id)
    try:
        publish(mqtt_url, topic, [status.model_dump_json(by_alias=True).encode()], retain=True)
        wait_until(
            lambda: db.execute("SELECT online FROM gateway WHERE id = %s", (seeded.gateway_id,)).fetchone() == (True,)
        )
        row = db.execute(
            "SELECT last_status->>'outbox_depth', last_status_at FROM gateway WHERE id = %s", (seeded.gateway_id,)
        ).fetchone()
        assert row == ("3", sent)
        battery = db.execute("SELECT battery_pct FROM device WHERE gateway_id = %s", (seeded.gateway_id,)).fetchone()
        assert battery == (41,)
        publish(mqtt_url, topic, [OFFLINE_PAYLOAD], retain=True)
        wait_until(
            lambda: db.execute("SELECT online FROM gateway WHERE id = %s", (seeded.gateway_id,)).fetchone() == (False,)
        )
    finally:
        publish(mqtt_url, topic, [b""], retain=True)  # clear the retained status


def test_metrics_and_health_endpoints(db: Db, seeded: Seed, start_ingest: StartIngest, mqtt_url: str) -> None:
    service = start_ingest()
    publish(mqtt_url, seeded.topic, [batch_bytes(seeded.gateway_id, [make_reading(Kind.TEMPERATURE)]), b"not json"])
    wait_until(lambda: count(db, "SELECT count(*) FROM dead_letter") == 1 and _readings(db) == 1)
    base = f"http://127.0.0.1:{service.metrics_port}"
    with urllib.request.urlopen(f"{base}/healthz", timeout=5) as resp:
        assert json.loads(resp.read()) == {"mqtt": True, "database": True}
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    assert "egenmon_ingest_readings_stored_total 1.0" in text
    assert 'egenmon_ingest_observation_rows_total{status="valid"} 1.0' in text
    assert 'egenmon_ingest_dead_letters_total{reason="bad_json"} 1.0' in text
    assert "egenmon_ingest_commit_seconds_count" in text
    assert "egenmon_ingest_lag_seconds_count" in text


def test_rows_postgresql_refuses_become_storage_errors_and_the_batch_is_stored(
    db: Db, seeded: Seed, start_ingest: StartIngest, mqtt_url: str
) -> None:
    # Whatever the parser lets through that the database still refuses (here a constraint
    # of this test's own database) costs the batch one transaction per message, no more.
    db.execute("ALTER TABLE observation ADD CONSTRAINT test_refused CHECK (device_address <> 'AA:RE:FU:SE:D0')")
    service = start_ingest(flush_interval_s=0.5)  # one transaction for all three messages
    doc = json.loads(batch_bytes(seeded.gateway_id, [make_reading(Kind.TEMPERATURE, seq=5)]))
    doc["readings"][0]["device"]["address"] = "AA:RE:FU:SE:D0"
    nul = json.dumps(doc).encode()
    good = [batch_bytes(seeded.gateway_id, [make_reading(Kind.TEMPERATURE, seq=i)]) for i in (1, 2)]
    publish(mqtt_url, seeded.topic, [good[0], nul, good[1]])
    wait_until(lambda: count(db, "SELECT count(*) FROM dead_letter WHERE reason = 'storage_error'") == 1)
    wait_until(lambda: _readings(db) == 2)
    row = db.execute("SELECT payload FROM dead_letter WHERE reason = 'storage_error'").fetchone()
    assert row is not None
    assert bytes(row[0]) == nul
    assert service.metrics.db_errors.labels(kind="data")._value.get() >= 1
    assert count(db, "SELECT count(*) FROM dead_letter") == 1


def test_a_nul_in_one_message_never_costs_its_batch_the_single_transaction(
    db: Db, database_url: str, seeded: Seed
) -> None:
    """500 good messages and one whose reading holds a NUL: one transaction, one dead letter.

    A NUL reached the COPY before, PostgreSQL refused the batch and all 501 messages were
    stored one transaction each.
    """
    service = IngestService(IngestSettings(database_url=database_url, metrics_port=0))
    received = datetime.now(UTC)
    good = [
        Incoming(seeded.topic, batch_bytes(seeded.gateway_id, [make_reading(Kind.SPO2, seq=i)]), i, 1, 0, received)
        for i in range(500)
    ]
    doc = json.loads(batch_bytes(seeded.gateway_id, [make_reading(Kind.SPO2, seq=999)]))
    doc["readings"][0]["device"]["model"] = "Oxi\u0000meter"
    bad = Incoming(seeded.topic, json.dumps(doc).encode(), 500, 1, 0, received)
    msgs = [*good[:250], bad, *good[250:]]
    try:
        results = service.db.store_messages(msgs, prepare(msgs))
    finally:
        service.db.close()
    assert results is not None
    assert len(results) == 1  # stored as one batch
    assert (results[0].readings_stored, results[0].dead_letters) == (500, {"nul_in_text": 1})
    commits = service.metrics.registry.get_sample_value("egenmon_ingest_commit_seconds_count")
    assert commits == 1.0
    assert service.metrics.registry.get_sample_value("egenmon_ingest_db_errors_total", {"kind": "data"}) is None
    assert _readings(db) == 500
    rows = db.execute("SELECT reason, reading_index FROM dead_letter").fetchall()
    assert rows == [("nul_in_text", 0)]


def test_the_broker_refuses_payloads_above_the_wire_limit(
    db: Db, seeded: Seed, start_ingest: StartIngest, mqtt_url: str
) -> None:
    """The test broker carries deploy's message_size_limit: a 5 MB publish never reaches ingest."""
    service = start_ingest()
    huge = b"{" + b" " * (5 * 1000 * 1000) + b"}"
    ok = batch_bytes(seeded.gateway_id, [make_reading(Kind.WEIGHT)])
    publish(mqtt_url, seeded.topic, [huge, ok])
    wait_until(lambda: _readings(db) == 1)
    assert count(db, "SELECT count(*) FROM dead_letter") == 0
    assert service.metrics.registry.get_sample_value("egenmon_ingest_messages_total", {"topic": "readings"}) == 1.0

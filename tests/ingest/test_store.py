"""Storing directly (no broker): notification splitting, duplicate counting."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import psycopg

from device_profiles.messages import NEW_READINGS_CHANNEL
from device_profiles.vocabulary import Kind
from ingest.prepare import Incoming, prepare
from ingest.store import NOTIFY_MAX_BYTES, _notify, setup_connection, store
from tests.ingest.helpers import Seed, batch_bytes, make_reading


def test_long_patient_lists_are_split_below_the_notify_limit(database_url: str) -> None:
    patients = [uuid.uuid4() for _ in range(500)]
    with psycopg.connect(database_url, autocommit=True) as listener, psycopg.connect(database_url) as conn:
        listener.execute(f"LISTEN {NEW_READINGS_CHANNEL}")
        _notify(conn, patients)
        conn.commit()
        payloads = [n.payload for n in listener.notifies(timeout=5, stop_after=3)]
    assert len(payloads) >= 3
    assert all(len(p.encode()) <= NOTIFY_MAX_BYTES for p in payloads)
    named = [p for payload in payloads for p in json.loads(payload)["patients"]]
    assert sorted(named) == sorted(str(p) for p in patients)


def test_store_counts_new_and_duplicate_readings(db: psycopg.Connection[Any], database_url: str, seeded: Seed) -> None:
    readings = [make_reading(Kind.BLOOD_PRESSURE, seq=i) for i in range(3)]
    msg = Incoming(seeded.topic, batch_bytes(seeded.gateway_id, readings), 1, 1, 0, datetime.now(UTC))
    with psycopg.connect(database_url, autocommit=True) as conn:
        setup_connection(conn)
        first, _ = store(conn, prepare([msg]), max_weight_change_kg=5.0)
        again, _ = store(conn, prepare([msg, msg]), max_weight_change_kg=5.0)
    assert (first.readings_stored, first.readings_duplicate, first.rows_stored) == (3, 0, 12)
    assert first.patients == [seeded.patient_id]
    assert (again.readings_stored, again.readings_duplicate, again.rows_stored, again.patients) == (0, 6, 0, [])

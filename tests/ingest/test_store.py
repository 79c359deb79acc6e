"""Storing directly (no broker): notification splitting, duplicate counting."""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from device_profiles.vocabulary import Kind
from device_profiles.wire import MAX_MESSAGE_BYTES
from ingest.pipeline import DEAD_LETTER_KEEP_BYTES, Incoming, prepare
from ingest.store import (
    DirectCopyGate,
    StoreResult,
    _notify,
    setup_connection,
    store,
)
from schema.notify import NEW_READINGS_CHANNEL, NOTIFY_MAX_BYTES
from tests.ingest.helpers import T0, Seed, batch_bytes, make_reading


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


def _msg(seeded: Seed, readings: list[Any], mid: int = 1) -> Incoming:
    return Incoming(seeded.topic, batch_bytes(seeded.gateway_id, readings), mid, 1, 0, datetime.now(UTC))


def test_new_readings_are_copied_directly_and_a_batch_with_a_stored_one_goes_staged(
    db: psycopg.Connection[Any], database_url: str, seeded: Seed
) -> None:
    old = make_reading(Kind.SPO2, seq=1)
    new = [make_reading(Kind.SPO2, seq=i) for i in (2, 3)]
    with psycopg.connect(database_url, autocommit=True) as conn:
        setup_connection(conn)
        first, _ = store(conn, prepare([_msg(seeded, [old])]), max_weight_change_kg=5.0)
        mixed, _ = store(conn, prepare([_msg(seeded, [new[0], old, new[1]])]), max_weight_change_kg=5.0)
        # Two copies of one new reading in one batch: the first is stored, directly.
        twice = make_reading(Kind.SPO2, seq=4)
        within, _ = store(conn, prepare([_msg(seeded, [twice]), _msg(seeded, [twice], 2)]), max_weight_change_kg=5.0)
    assert (first.path, first.readings_stored, first.rows_stored) == ("direct", 1, 2)
    assert first.rows_by_status == {"valid": 2}
    assert (mixed.path, mixed.readings_stored, mixed.readings_duplicate, mixed.rows_stored) == ("staged", 2, 1, 4)
    assert mixed.patients == [seeded.patient_id]
    assert (within.path, within.readings_stored, within.readings_duplicate) == ("direct", 1, 1)
    rows = db.execute("SELECT count(*), count(DISTINCT reading_id) FROM observation").fetchone()
    assert rows == (8, 4)
    raw = db.execute("SELECT count(*) FROM reading_raw").fetchone()
    assert raw == (4,)


def test_the_gate_keeps_batches_staged_while_duplicates_keep_coming() -> None:
    gate = DirectCopyGate(quiet_batches=3)
    assert gate.try_direct()
    gate.record(StoreResult(path="direct", readings_stored=5))
    assert gate.try_direct()
    gate.record(StoreResult(path="staged", readings_stored=3, readings_duplicate=2))  # a burst of re-delivery
    seen = []
    for duplicates in (0, 4, 0, 0, 0):  # the burst goes on once, then ends
        seen.append(gate.try_direct())
        gate.record(StoreResult(path="staged", readings_duplicate=duplicates))
    assert seen == [False, False, False, False, False]
    assert gate.try_direct()  # three duplicate-free staged batches after the last duplicate
    gate.record(StoreResult(path=None))  # a batch of dead letters only says nothing
    assert gate.try_direct()


def test_store_uses_the_gate(db: psycopg.Connection[Any], database_url: str, seeded: Seed) -> None:
    gate = DirectCopyGate(quiet_batches=1)
    results = []
    with psycopg.connect(database_url, autocommit=True) as conn:
        setup_connection(conn)
        for batch in ([1], [1, 2], [3], [4]):
            result, _ = store(
                conn,
                prepare([_msg(seeded, [make_reading(Kind.TEMPERATURE, seq=i) for i in batch])]),
                max_weight_change_kg=5.0,
                gate=gate,
            )
            gate.record(result)
            results.append((result.path, result.readings_stored, result.readings_duplicate))
    # [1, 2] finds 1 stored: staged; [3] is the one quiet staged batch; [4] is direct again.
    assert results == [("direct", 1, 0), ("staged", 1, 1), ("staged", 1, 0), ("direct", 1, 0)]


def test_two_writers_with_the_same_devices_in_opposite_orders_never_deadlock(database_url: str, seeded: Seed) -> None:
    """Each batch upserts its devices; two transactions locking them in different orders used to deadlock."""
    n_devices = 150

    def batch(round_: int, reverse: bool) -> Any:
        order = range(n_devices - 1, -1, -1) if reverse else range(n_devices)
        readings = [make_reading(Kind.TEMPERATURE, serial=f"SN{i:05d}", seq=2 * round_ + reverse) for i in order]
        return prepare([_msg(seeded, readings)])

    work = {w: [batch(r, bool(w)) for r in range(8)] for w in (0, 1)}
    failures: list[str] = []
    start = threading.Barrier(2)

    def writer(w: int) -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            setup_connection(conn)
            start.wait()
            for b in work[w]:
                try:
                    store(conn, b, max_weight_change_kg=5.0)
                except psycopg.Error as err:
                    failures.append(type(err).__name__)
                    return

    threads = [threading.Thread(target=writer, args=(w,)) for w in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert failures == []
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM device WHERE gateway_id = %s", (seeded.gateway_id,)).fetchone()
    assert row == (n_devices,)


def test_the_weight_check_is_never_prepared(database_url: str, seeded: Seed) -> None:
    """A cached plan of the weight check outlives the table size it was made for.

    psycopg prepares a statement after a few uses and PostgreSQL then keeps a generic plan;
    made while observation looked empty, that plan scans the whole table once per weight
    and ingest stalled as the table grew. The weight check is planned for every batch.
    """
    with psycopg.connect(database_url, autocommit=True) as conn:
        setup_connection(conn)
        conn.execute("VACUUM observation")  # analysed while empty: no 10-page minimum estimate
        for i in range(12):  # more than psycopg's prepare_threshold uses
            readings = [make_reading(Kind.WEIGHT, serial="SN-w", seq=i), make_reading(Kind.BLOOD_PRESSURE, seq=i)]
            store(conn, prepare([_msg(seeded, readings, i)]), max_weight_change_kg=5.0)
        prepared = [row[0] for row in conn.execute("SELECT statement FROM pg_prepared_statements").fetchall()]
    assert prepared, "psycopg prepared none of the batch's statements: the test no longer tests anything"
    assert not [s for s in prepared if "change_kg" in s]


@pytest.mark.timescaledb
def test_direct_and_staged_writes_into_compressed_chunks(timescaledb_url: str, seeded: Seed) -> None:
    """A late backlog lands in chunks the policy already compressed: new readings take the
    staged way (explicit conflict targets, see ingest/README.md), and a re-delivered batch
    is still recognised against compressed rows."""
    early = [make_reading(Kind.BLOOD_PRESSURE, seq=i) for i in range(5)]
    late = [make_reading(Kind.BLOOD_PRESSURE, seq=i) for i in range(5, 10)]
    with psycopg.connect(timescaledb_url, autocommit=True) as conn:
        setup_connection(conn)
        first, _ = store(conn, prepare([_msg(seeded, early)]), max_weight_change_kg=5.0)
        for table in ("observation", "reading_raw"):
            conn.execute(f"SELECT compress_chunk(c) FROM show_chunks('{table}') c")
        compressed = conn.execute(
            "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name IN"
            " ('observation', 'reading_raw') AND is_compressed"
        ).fetchone()
        assert compressed == (2,)
        second, _ = store(conn, prepare([_msg(seeded, late)]), max_weight_change_kg=5.0)
        again, _ = store(conn, prepare([_msg(seeded, early + late)]), max_weight_change_kg=5.0)
        rows = conn.execute("SELECT count(*), count(DISTINCT reading_id) FROM observation").fetchone()
        raw = conn.execute("SELECT count(*) FROM reading_raw").fetchone()
    assert (first.path, first.readings_stored) == ("direct", 5)
    assert (second.path, second.readings_stored, second.rows_stored) == ("staged", 5, 20)
    assert (again.path, again.readings_stored, again.readings_duplicate) == ("staged", 0, 10)
    assert rows == (40, 10)
    assert raw == (10,)


def test_one_reading_id_with_two_measured_at_is_stored_once_with_the_first(
    db: psycopg.Connection[Any], database_url: str, seeded: Seed
) -> None:
    """An unset device clock, then a corrected one on a re-read: same reading id, new time."""
    unset = make_reading(Kind.BLOOD_PRESSURE, seq=7, measured_at=T0, flags=["device_clock_unset"])
    corrected = unset.model_copy(update={"measured_at": T0 + timedelta(hours=3), "flags": ["device_clock_corrected"]})
    again = unset.model_copy(update={"measured_at": T0 + timedelta(hours=5)})
    other = make_reading(Kind.BLOOD_PRESSURE, seq=8)
    with psycopg.connect(database_url, autocommit=True) as conn:
        setup_connection(conn)
        first, _ = store(conn, prepare([_msg(seeded, [unset])]), max_weight_change_kg=5.0)
        second, _ = store(conn, prepare([_msg(seeded, [corrected, other])]), max_weight_change_kg=5.0)
        # Both times in one batch, never stored before: the first one in the batch is kept.
        twin = make_reading(Kind.SPO2, seq=9, measured_at=T0)
        pair = [twin, twin.model_copy(update={"measured_at": T0 + timedelta(minutes=30)})]
        within, _ = store(conn, prepare([_msg(seeded, pair)]), max_weight_change_kg=5.0)
        third, _ = store(conn, prepare([_msg(seeded, [again])]), max_weight_change_kg=5.0, gate=DirectCopyGate())
    assert (first.readings_stored, first.rows_stored) == (1, 4)
    assert (second.path, second.readings_stored, second.readings_duplicate, second.rows_stored) == ("staged", 1, 1, 4)
    assert (within.readings_stored, within.readings_duplicate, within.rows_stored) == (1, 1, 2)
    assert (third.readings_stored, third.readings_duplicate, third.rows_stored) == (0, 1, 0)
    assert third.dead_letters == {}
    times = db.execute(
        "SELECT DISTINCT measured_at FROM observation WHERE reading_id = %s", (unset.reading_id,)
    ).fetchall()
    assert times == [(T0,)]
    raw = db.execute("SELECT measured_at FROM reading_raw WHERE reading_id = %s", (unset.reading_id,)).fetchall()
    assert raw == [(T0,)]
    twin_times = db.execute("SELECT DISTINCT measured_at FROM observation WHERE reading_id = %s", (twin.reading_id,))
    assert twin_times.fetchall() == [(T0,)]
    assert db.execute("SELECT count(*) FROM dead_letter").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM reading_key").fetchone() == (3,)


def test_a_too_large_message_is_stored_as_its_start_size_and_hash(
    db: psycopg.Connection[Any], database_url: str, seeded: Seed
) -> None:
    big = b'{"schema": 1, "junk": "' + b"x" * (MAX_MESSAGE_BYTES + 100) + b'"}'
    with psycopg.connect(database_url, autocommit=True) as conn:
        setup_connection(conn)
        result, _ = store(conn, prepare([_msg_bytes(seeded, big)]), max_weight_change_kg=5.0)
    assert result.dead_letters == {"too_large": 1}
    row = db.execute("SELECT reason, gateway_id, length(payload), payload_bytes, payload_sha256 FROM dead_letter")
    assert row.fetchall() == [
        ("too_large", seeded.gateway_id, DEAD_LETTER_KEEP_BYTES, len(big), hashlib.sha256(big).digest())
    ]


def _msg_bytes(seeded: Seed, payload: bytes) -> Incoming:
    return Incoming(seeded.topic, payload, 1, 1, 0, datetime.now(UTC))

"""The SQLite outbox on its own: durability, batches, acknowledgements, capacity, dedupe."""

from __future__ import annotations

import base64
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from device_profiles.vocabulary import COMPONENTS, Kind
from device_profiles.wire import DeviceInfo, Reading, Value, reading_id
from gateway.outbox import Outbox

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def reading(n: int) -> Reading:
    return Reading(
        reading_id=reading_id("SN-OUT", Kind.WEIGHT, n),
        device=DeviceInfo(address="F0:00:00:00:00:04", model="SIM-WS", serial="SN-OUT"),
        kind=Kind.WEIGHT,
        measured_at=T0 + timedelta(minutes=n),
        received_at=T0 + timedelta(minutes=n, seconds=1),
        values={"weight": Value(value=80 + n / 10, unit=COMPONENTS["weight"].unit)},
        raw=base64.b64encode(bytes([n % 256])).decode(),
    )


def test_wal_full_sync_and_private_file(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite3")
    try:
        assert ob._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert ob._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert (tmp_path / "o.sqlite3").stat().st_mode & 0o077 == 0
    finally:
        ob.close()


def test_batches_keep_seq_until_acked_and_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    ob = Outbox(path)
    assert ob.add([reading(i) for i in range(5)]).added == 5
    b0 = ob.next_batch(2)
    b1 = ob.next_batch(2)
    assert b0 is not None
    assert b1 is not None
    assert (b0.seq, b1.seq) == (0, 1)
    assert [r.measured_at for r in b0.readings] == [T0, T0 + timedelta(minutes=1)]
    assert ob.acknowledge(b0.seq) == 2
    assert ob.depth == 3
    ob.close()
    # A restart: the unacknowledged batch comes back identical, the seq keeps counting.
    ob = Outbox(path)
    try:
        assert ob.depth == 3
        assert ob.unacked_seqs() == [1]
        assert ob.load_batch(1).readings == b1.readings
        b2 = ob.next_batch(10)
        assert b2 is not None
        assert b2.seq == 2
        assert len(b2.readings) == 1
        assert ob.next_batch(10) is None
    finally:
        ob.close()


def test_resent_readings_are_taken_once_even_after_ack(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite3")
    try:
        ob.add([reading(1)])
        batch = ob.next_batch(10)
        assert batch is not None
        ob.acknowledge(batch.seq)
        res = ob.add([reading(1), reading(2)])
        assert (res.added, res.duplicates) == (1, 1)
    finally:
        ob.close()


def test_capacity_is_an_alarm_and_never_refuses_a_received_reading(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite3", capacity=3)
    try:
        ob.add([reading(i) for i in range(2)], address="AA", last_sequence=2)
        assert not ob.full
        res = ob.add([reading(i) for i in range(2, 5)], address="AA", last_sequence=5)
        assert res.added == 3
        assert ob.full
        rec = ob.device("AA")
        assert rec is not None
        assert rec.last_sequence == 5
        batch = ob.next_batch(10)
        assert batch is not None
        ob.acknowledge(batch.seq)
        assert not ob.full
    finally:
        ob.close()


def test_a_committed_reading_is_on_disk_for_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    ob = Outbox(path)
    try:
        ob.add([reading(7)])
        # Another process (here: connection) sees it at once: it was committed, not cached.
        other = sqlite3.connect(path)
        assert other.execute("SELECT count(*) FROM reading").fetchone()[0] == 1
        other.close()
    finally:
        ob.close()


def test_pairing_and_rejects(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite3")
    try:
        ob.set_paired("AA", "sig.blood_pressure", True)
        ob.seen("AA", "sig.blood_pressure", T0, 12)
        [d] = ob.devices()
        assert (d.paired, d.battery_pct, d.last_seen_at) == (True, 12, T0)
        ob.set_paired("AA", None, False)
        assert ob.device("AA") is not None
        assert not ob.device("AA").paired  # type: ignore[union-attr]
        ob.reject("AA", "00002a35-0000-1000-8000-00805f9b34fb", "truncated", b"\xff", T0)
        assert ob.rejected_count() == 1
    finally:
        ob.close()

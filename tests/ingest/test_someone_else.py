"""Readings that are not the patient's: another user of a shared cuff or scale (the gateway
flags ``other_user``), and someone else on a scale without users (ingest's weight check).
Both are stored as ``rejected`` with a reason, so staff see them and the rules do not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from device_profiles.vocabulary import Kind
from device_profiles.wire import Reading
from ingest.pipeline import Incoming, prepare
from ingest.store import setup_connection, store
from tests.ingest.helpers import Seed, batch_bytes, make_reading

DAY0 = datetime(2026, 11, 1, 6, 30, tzinfo=UTC)  # 07:30 in Stockholm


def _store(conn: psycopg.Connection[Any], seeded: Seed, readings: list[Reading], mid: int) -> None:
    msg = Incoming(seeded.topic, batch_bytes(seeded.gateway_id, readings, seq=mid), mid, 1, 0, datetime.now(UTC))
    store(conn, prepare([msg]), max_weight_change_kg=5.0)


def _weight(day: float, kg: float, seq: int) -> Reading:
    return make_reading(Kind.WEIGHT, seq=seq, measured_at=DAY0 + timedelta(days=day), values={"weight": kg})


def _rows(conn: psycopg.Connection[Any], seeded: Seed) -> list[tuple[float, str, str | None, list[str]]]:
    return [
        (float(v), s, r, list(f))
        for v, s, r, f in conn.execute(
            "SELECT value, status, reject_reason, flags FROM observation WHERE patient_id = %s "
            "AND component IN ('weight', 'systolic') ORDER BY measured_at",
            (seeded.patient_id,),
        ).fetchall()
    ]


def test_a_weight_far_from_the_recent_median_is_someone_else(
    db: psycopg.Connection[Any], database_url: str, seeded: Seed
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        setup_connection(conn)
        _store(conn, seeded, [_weight(d, 80.0 + d * 0.2, d) for d in range(5)], 1)
        # Day 7, nobody weighed on day 6 (so no previous-day reference): 95 kg is 18 % above
        # the median 80.4 kg; 86 kg an hour later (7 %) is the patient, putting on fluid.
        _store(conn, seeded, [_weight(7, 95.0, 7)], 2)
        _store(conn, seeded, [_weight(7.04, 86.0, 8)], 3)
        # Day 8: a 4.5 kg change from day 7's accepted weight and 11 % from the median: kept.
        _store(conn, seeded, [_weight(8, 90.5, 9)], 4)
        rows = _rows(conn, seeded)
        # What the rules read (alerting.load: status <> 'rejected') leaves it out.
        used = [
            float(v)
            for (v,) in conn.execute(
                "SELECT value FROM observation WHERE patient_id = %s AND component = 'weight'"
                " AND status <> 'rejected' ORDER BY measured_at",
                (seeded.patient_id,),
            )
        ]
    assert [(v, s) for v, s, _r, _f in rows] == [
        (80.0, "valid"),
        (80.2, "valid"),
        (80.4, "valid"),
        (80.6, "valid"),
        (80.8, "valid"),
        (95.0, "rejected"),
        (86.0, "valid"),
        (90.5, "valid"),
    ]
    _v, _s, reason, flags = rows[5]
    assert reason is not None
    assert reason.startswith("probably_someone_else: weight +14.6 kg from the median 80.4 kg")
    assert flags == ["probably_someone_else"]
    assert used == [80.0, 80.2, 80.4, 80.6, 80.8, 86.0, 90.5]


def test_the_previous_day_check_still_flags_a_jump(
    db: psycopg.Connection[Any], database_url: str, seeded: Seed
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        setup_connection(conn)
        _store(conn, seeded, [_weight(0, 70.0, 0)], 1)
        _store(conn, seeded, [_weight(1, 76.0, 1)], 2)
        (_a, (_v, status, reason, flags)) = _rows(conn, seeded)
    assert status == "rejected"
    assert reason == "probably_someone_else: weight changed +6.0 kg from the previous day (likely another person)"
    assert flags == ["probably_someone_else"]


def test_another_user_of_a_shared_cuff_is_kept_but_rejected(
    db: psycopg.Connection[Any], database_url: str, seeded: Seed
) -> None:
    mine = make_reading(Kind.BLOOD_PRESSURE, seq=1).model_copy(update={"user_index": 1})
    theirs = make_reading(Kind.BLOOD_PRESSURE, seq=2).model_copy(update={"user_index": 2, "flags": ["other_user"]})
    with psycopg.connect(database_url, autocommit=True) as conn:
        setup_connection(conn)
        _store(conn, seeded, [mine, theirs], 1)
        rows = _rows(conn, seeded)
    assert rows == [
        (128.0, "valid", None, []),
        (128.0, "rejected", "other_user: measured by user 2 of a shared device, not the patient", ["other_user"]),
    ]

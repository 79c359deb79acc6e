"""The write path's SQL: explicit conflict targets, the weight check's literal bounds, late data."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg import sql

from device_profiles.vocabulary import Kind
from ingest.pipeline import Incoming, prepare
from ingest.store import (
    INSERT_KEYS,
    INSERT_OBS,
    INSERT_RAW,
    DirectCopyGate,
    _weight_bounds,
    setup_connection,
    store,
    weight_check_sql,
)
from tests.ingest.helpers import T0, Seed, batch_bytes, make_reading

STOCKHOLM = ZoneInfo("Europe/Stockholm")


def _primary_key(conn: psycopg.Connection[Any], table: str) -> tuple[str, list[str]]:
    row = conn.execute(
        "SELECT i.indexrelid::regclass::text,"
        " array_agg(a.attname ORDER BY array_position(i.indkey::int2[], a.attnum))"
        " FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
        " WHERE i.indrelid = %s::regclass AND i.indisprimary GROUP BY 1",
        (table,),
    ).fetchone()
    assert row is not None
    return row[0], list(row[1])


@pytest.mark.parametrize(
    ("statement", "table"),
    [(INSERT_KEYS, "reading_key"), (INSERT_OBS, "observation"), (INSERT_RAW, "reading_raw")],
)
def test_every_staged_insert_names_the_primary_key_as_its_conflict_target(
    db: psycopg.Connection[Any], statement: str, table: str
) -> None:
    """Without a target TimescaleDB decompresses every batch of a compressed chunk it lands in."""
    setup_connection(db)
    index, columns = _primary_key(db, table)
    target = re.search(r"ON CONFLICT \(([^)]*)\) DO NOTHING", statement)
    assert target is not None, statement
    assert [c.strip() for c in target[1].split(",")] == columns
    plan = "\n".join(r[0] for r in db.execute("EXPLAIN (VERBOSE, COSTS OFF) " + statement).fetchall())
    # PostgreSQL lists arbiter indexes only for an explicit target (none for a bare DO NOTHING).
    assert f"Conflict Arbiter Indexes: {index}" in plan


def test_the_weight_check_carries_the_batch_bounds_as_constants(db: psycopg.Connection[Any]) -> None:
    at = [T0, T0 + timedelta(hours=5)]
    lower, upper = _weight_bounds(at)
    # A weight in the window: on TimescaleDB an empty hypertable has no chunk to scan, and
    # the plan is then a bare "One-Time Filter: false" without the constants.
    db.execute(
        "INSERT INTO observation (reading_id, component, measured_at, patient_id, gateway_id, device_address,"
        " kind, value, unit, received_at) VALUES (gen_random_uuid(), 'weight', %s, gen_random_uuid(), 'gw', 'AA',"
        " 'weight', 80, 'kg', %s)",
        (T0 - timedelta(hours=12), T0),
    )
    query = sql.SQL("EXPLAIN (VERBOSE, COSTS OFF) ") + weight_check_sql(at)
    params = {"ids": [uuid.uuid4()] * 2, "patients": [uuid.uuid4()] * 2, "at": at, "kg": [80.0, 81.0], "max_change": 5}
    plan = "\n".join(r[0] for r in db.execute(query, params).fetchall())
    # The constants reach the scan of observation (what lets TimescaleDB exclude chunks at
    # planning); the session runs in UTC like the test cluster.
    assert f"'{lower:%Y-%m-%d %H:%M:%S}+00'::timestamp with time zone" in plan
    assert f"'{upper:%Y-%m-%d %H:%M:%S}+00'::timestamp with time zone" in plan


def _previous_local_day_start(t: datetime) -> datetime:
    day = t.astimezone(STOCKHOLM).date() - timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=STOCKHOLM)


@pytest.mark.parametrize(
    "t",
    [
        datetime(2026, 3, 30, 21, 59, tzinfo=UTC),  # 23:59 local, the day after the 23-hour day
        datetime(2026, 10, 26, 22, 59, tzinfo=UTC),  # 23:59 local, the day after the 25-hour day
        datetime(2026, 10, 25, 22, 59, tzinfo=UTC),  # 23:59 on the 25-hour day itself
        datetime(2026, 6, 1, 0, 0, tzinfo=UTC),
    ],
)
def test_the_literal_bounds_hold_every_weight_window(t: datetime) -> None:
    lower, upper = _weight_bounds([t, t + timedelta(minutes=1)])
    assert lower <= _previous_local_day_start(t) < upper
    # Not so wide that a week-long chunk is always planned twice.
    assert t - lower <= timedelta(hours=50)


def test_the_weight_check_still_rejects_with_the_bounds_across_a_daylight_saving_change(
    database_url: str, seeded: Seed
) -> None:
    # Sunday 25 Oct 2026 is 25 hours long in Stockholm (CEST ends at 03:00). A weight at
    # 01:30 that Sunday is the reference for one at 00:30 on Monday, 25 hours later.
    yesterday = datetime(2026, 10, 24, 23, 30, tzinfo=UTC)
    now = datetime(2026, 10, 25, 23, 30, tzinfo=UTC)
    assert (yesterday.astimezone(STOCKHOLM).day, now.astimezone(STOCKHOLM).day) == (25, 26)
    before = make_reading(Kind.WEIGHT, serial="SN-w", seq=1, measured_at=yesterday, values={"weight": 80.0})
    jump = make_reading(Kind.WEIGHT, serial="SN-w", seq=2, measured_at=now, values={"weight": 86.5})
    with psycopg.connect(database_url, autocommit=True) as conn:
        setup_connection(conn)
        store(conn, prepare([_msg(seeded, [before])]), max_weight_change_kg=5.0)
        result, _ = store(conn, prepare([_msg(seeded, [jump])]), max_weight_change_kg=5.0)
        status = conn.execute(
            "SELECT status, reject_reason FROM observation WHERE reading_id = %s AND component = 'weight'",
            (jump.reading_id,),
        ).fetchone()
    assert result.rows_by_status == {"rejected": 1}
    assert status is not None
    assert status[0] == "rejected"
    assert "6.5 kg" in status[1]


def test_on_plain_postgresql_no_batch_counts_as_reaching_compressed_chunks(database_url: str, seeded: Seed) -> None:
    gate = DirectCopyGate()
    old = make_reading(Kind.SPO2, seq=1, measured_at=datetime(2021, 1, 1, tzinfo=UTC))
    with psycopg.connect(database_url, autocommit=True) as conn:
        setup_connection(conn)
        assert not gate.reaches_compressed(conn, datetime(2000, 1, 1, tzinfo=UTC))
        result, _ = store(conn, prepare([_msg(seeded, [old])]), max_weight_change_kg=5.0, gate=gate)
    assert (result.path, result.readings_stored) == ("direct", 1)


def _msg(seeded: Seed, readings: list[Any], mid: int = 1) -> Incoming:
    return Incoming(seeded.topic, batch_bytes(seeded.gateway_id, readings), mid, 1, 0, datetime.now(UTC))


def _batches_decompressed(conn: psycopg.Connection[Any], week: datetime, statement: str) -> int:
    """How many compressed batches ``statement`` (the staged observation insert) decompresses
    for 100 late readings staged at ``week`` + 1 h, from its EXPLAIN ANALYZE (rolled back).
    Unlike the time it takes, this does not depend on the machine's load."""
    with conn.transaction(force_rollback=True):
        conn.execute(
            "INSERT INTO ingest_stage_key (reading_id, gateway_id, measured_at)"
            " SELECT gen_random_uuid(), 'gw-late', %s + interval '1 hour' + n * interval '1 minute'"
            " FROM generate_series(1, 100) n",
            (week,),
        )
        conn.execute(
            "INSERT INTO ingest_stage_obs (reading_id, component, measured_at, patient_id, gateway_id,"
            " device_address, kind, value, unit, received_at)"
            " SELECT reading_id, 'glucose_interstitial', measured_at, gen_random_uuid(), gateway_id, 'AA',"
            " 'glucose_cgm', 6.5, 'mmol/L', measured_at FROM ingest_stage_key"
        )
        plan = "\n".join(
            r[0] for r in conn.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) " + statement)
        )
    # TimescaleDB counts the batches it decompressed and found without a match apart from
    # those it decompressed and used; together they are what the key check decompressed.
    found = re.findall(r"Batches (?:filtered after decompression|decompressed): (\d+)", plan)
    return sum(int(n) for n in found)


# The bound for the backlog test: 100 late readings (~180 rows) into a compressed chunk of
# 300,000 rows (~900 compressed batches). With the explicit targets the batches are pruned
# and this takes tens of milliseconds; a bare ON CONFLICT DO NOTHING or a direct COPY
# decompresses every batch (measured: 40 rows 2.2 s against 20,000 batches).
BACKLOG_BOUND_S = 1.5


@pytest.mark.timescaledb
def test_a_100_reading_backlog_into_a_compressed_chunk_stays_within_the_bound(
    timescaledb_url: str, seeded: Seed
) -> None:
    week = datetime(2026, 6, 1, tzinfo=UTC)
    with psycopg.connect(timescaledb_url, autocommit=True) as conn:
        setup_connection(conn)
        # 300 patients x 1,000 readings in one week, then compressed (as the policy would).
        conn.execute(
            """
            INSERT INTO observation (reading_id, component, measured_at, patient_id, gateway_id, device_address,
                                     kind, value, unit, received_at)
            SELECT gen_random_uuid(), 'glucose_interstitial', %s + (n * interval '10 minutes'),
                   p.id, 'gw-filler', 'AA', 'glucose_cgm', 6.5, 'mmol/L', %s
            FROM (SELECT gen_random_uuid() AS id FROM generate_series(1, 300)) p, generate_series(1, 1000) n
            """,
            (week, week),
        )
        conn.execute(
            "INSERT INTO reading_raw (reading_id, measured_at, gateway_id, device)"
            " SELECT gen_random_uuid(), %s + (n * interval '20 seconds'), 'gw-' || (n %% 300), '{}'"
            " FROM generate_series(1, 30000) n",
            (week,),
        )
        for table in ("observation", "reading_raw"):
            conn.execute(f"SELECT compress_chunk(c) FROM show_chunks('{table}') c")
        compressed = conn.execute(
            "SELECT count(*) FROM timescaledb_information.chunks WHERE hypertable_name = 'observation'"
            " AND is_compressed AND range_start <= %s AND range_end > %s",
            (week + timedelta(hours=1), week + timedelta(hours=3)),
        ).fetchone()
        late = [
            make_reading(Kind.BLOOD_PRESSURE, serial="SN-late", seq=i, measured_at=week + timedelta(hours=1, minutes=i))
            for i in range(100)
        ]
        gate = DirectCopyGate()
        start = time.perf_counter()
        result, _ = store(conn, prepare([_msg(seeded, late)]), max_weight_change_kg=5.0, gate=gate)
        elapsed = time.perf_counter() - start
        stored = conn.execute("SELECT count(*) FROM observation WHERE patient_id = %s", (seeded.patient_id,)).fetchone()
        bare = re.sub(r"ON CONFLICT \([^)]*\) DO NOTHING", "ON CONFLICT DO NOTHING", INSERT_OBS)
        decompressed = {"target": _batches_decompressed(conn, week, INSERT_OBS)}
        decompressed["bare"] = _batches_decompressed(conn, week, bare)
    assert compressed == (1,)  # the backlog's hours lie in one compressed chunk
    assert (result.path, result.readings_stored, result.rows_stored) == ("staged", 100, 400)
    assert stored == (400,)
    assert elapsed < BACKLOG_BOUND_S, f"{elapsed:.2f} s"
    # The target is what lets TimescaleDB skip batches by their bloom filter on the key
    # (measured: 452 decompressed with it, every one of the 30,000 checked without).
    assert decompressed["bare"] > 0
    assert decompressed["target"] * 10 < decompressed["bare"], decompressed

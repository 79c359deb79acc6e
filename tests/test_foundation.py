"""The local stack and the schema: real PostgreSQL, real Mosquitto, real migrations."""

from __future__ import annotations

import psycopg
import pytest

from schema.migrate import migrate, storage_mode


def test_schema_has_every_table_of_the_design(db: psycopg.Connection[tuple[object, ...]]) -> None:
    rows = db.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'").fetchall()
    tables = {r[0] for r in rows}
    for t in (
        "care_unit",
        "staff",
        "staff_unit",
        "patient",
        "patient_identity",
        "care_plan",
        "gateway",
        "gateway_assignment",
        "device",
        "alert",
        "alert_event",
        "dead_letter",
        "audit_log",
        "observation",
        "reading_raw",
        "enrollment_code",
    ):
        assert t in tables, t


def test_migrate_twice_is_a_no_op(database_url: str) -> None:
    assert migrate(database_url) == storage_mode(database_url)


def test_plain_postgres_storage_is_reported(database_url: str) -> None:
    assert storage_mode(database_url) in {"postgresql", "timescaledb"}


def test_audit_log_refuses_update_and_delete(db: psycopg.Connection[tuple[object, ...]]) -> None:
    db.execute("INSERT INTO audit_log (action, resource) VALUES ('read', 'patient')")
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        db.execute("UPDATE audit_log SET action = 'x'")
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        db.execute("DELETE FROM audit_log")


def test_gateway_assignments_cannot_overlap(db: psycopg.Connection[tuple[object, ...]]) -> None:
    unit = db.execute("INSERT INTO care_unit (code, name) VALUES ('u1', 'Enhet') RETURNING id").fetchone()
    assert unit
    p1 = db.execute(
        "INSERT INTO patient (pseudonym, display_name, unit_id) VALUES ('P1', 'A', %s) RETURNING id",
        (unit[0],),
    ).fetchone()
    p2 = db.execute(
        "INSERT INTO patient (pseudonym, display_name, unit_id) VALUES ('P2', 'B', %s) RETURNING id",
        (unit[0],),
    ).fetchone()
    assert p1
    assert p2
    db.execute("INSERT INTO gateway (id) VALUES ('gw-001')")
    db.execute(
        "INSERT INTO gateway_assignment (gateway_id, patient_id, valid)"
        " VALUES ('gw-001', %s, '[2026-01-01,2026-02-01)')",
        (p1[0],),
    )
    with pytest.raises(psycopg.errors.ExclusionViolation):
        db.execute(
            "INSERT INTO gateway_assignment (gateway_id, patient_id, valid) VALUES ('gw-001', %s, '[2026-01-15,)')",
            (p2[0],),
        )


@pytest.mark.timescaledb
def test_timescaledb_hypertable_compression_and_aggregate(timescaledb_url: str) -> None:
    with psycopg.connect(timescaledb_url) as conn:
        assert storage_mode(timescaledb_url) == "timescaledb"
        hyper = conn.execute(
            "SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables"
        ).fetchall()
        assert ("observation", True) in hyper
        jobs = conn.execute(
            "SELECT proc_name FROM timescaledb_information.jobs"
            " WHERE hypertable_name IN ('observation', 'observation_daily')"
        ).fetchall()
        assert {"policy_compression", "policy_refresh_continuous_aggregate"} <= {j[0] for j in jobs}
        caggs = conn.execute("SELECT view_name FROM timescaledb_information.continuous_aggregates").fetchall()
        assert ("observation_daily",) in caggs


def _patient_with_weights(conn: psycopg.Connection[tuple[object, ...]], days: int = 3) -> object:
    """A patient with morning and evening weights on ``days`` days (plus one rejected)."""
    unit = conn.execute("INSERT INTO care_unit (code, name) VALUES ('u-ts', 'Enhet') RETURNING id").fetchone()
    assert unit
    patient = conn.execute(
        "INSERT INTO patient (pseudonym, display_name, unit_id) VALUES ('P-TS', 'Test', %s) RETURNING id",
        (unit[0],),
    ).fetchone()
    assert patient
    for day in range(days):
        for hour, kg in ((6, 80.0 + day), (18, 81.0 + day)):
            conn.execute(
                "INSERT INTO observation (reading_id, component, measured_at, patient_id, gateway_id,"
                " device_address, kind, value, unit, received_at)"
                " VALUES (gen_random_uuid(), 'weight', %s, %s, 'gw-ts', 'AA', 'weight', %s, 'kg', now())",
                (f"2026-03-0{day + 1} {hour:02d}:00:00+00", patient[0], kg),
            )
    conn.execute(
        "INSERT INTO observation (reading_id, component, measured_at, patient_id, gateway_id,"
        " device_address, kind, value, unit, status, reject_reason, received_at)"
        " VALUES (gen_random_uuid(), 'weight', '2026-03-01 12:00+00', %s, 'gw-ts', 'AA', 'weight', 400, 'kg',"
        " 'rejected', 'weight 400 outside 20-350 kg', now())",
        (patient[0],),
    )
    return patient[0]


def _daily(conn: psycopg.Connection[tuple[object, ...]], patient: object) -> list[tuple[object, ...]]:
    return conn.execute(
        "SELECT to_char(day AT TIME ZONE 'Europe/Stockholm', 'YYYY-MM-DD'), n, mean, min, max"
        " FROM observation_daily WHERE patient_id = %s AND component = 'weight' ORDER BY day",
        (patient,),
    ).fetchall()


EXPECTED_DAILY = [
    ("2026-03-01", 2, 80.5, 80.0, 81.0),
    ("2026-03-02", 2, 81.5, 81.0, 82.0),
    ("2026-03-03", 2, 82.5, 82.0, 83.0),
]


def test_daily_summary_by_stockholm_day_without_rejected_values(db: psycopg.Connection[tuple[object, ...]]) -> None:
    patient = _patient_with_weights(db)
    assert _daily(db, patient) == EXPECTED_DAILY


@pytest.mark.timescaledb
def test_timescaledb_daily_aggregate_real_time_and_refreshed(timescaledb_url: str) -> None:
    with psycopg.connect(timescaledb_url, autocommit=True) as conn:
        patient = _patient_with_weights(conn)
        # Real-time aggregation answers before any refresh has run ...
        assert _daily(conn, patient) == EXPECTED_DAILY
        # ... and the materialised buckets give the same answer.
        conn.execute("CALL refresh_continuous_aggregate('observation_daily', NULL, NULL)")
        assert _daily(conn, patient) == EXPECTED_DAILY


@pytest.mark.timescaledb
def test_timescaledb_compressed_chunks_stay_readable_and_deduplicated(timescaledb_url: str) -> None:
    with psycopg.connect(timescaledb_url, autocommit=True) as conn:
        patient = _patient_with_weights(conn)
        chunks = conn.execute("SELECT show_chunks('observation')").fetchall()
        assert chunks
        for (chunk,) in chunks:
            conn.execute("SELECT compress_chunk(%s::regclass)", (str(chunk),))
        compressed = conn.execute(
            "SELECT count(*) FROM timescaledb_information.chunks"
            " WHERE hypertable_name = 'observation' AND is_compressed"
        ).fetchone()
        assert compressed
        assert compressed[0] == len(chunks)
        # Old readings are kept, compressed, never deleted.
        before = conn.execute("SELECT reading_id, measured_at FROM observation ORDER BY measured_at LIMIT 1").fetchone()
        assert before
        assert conn.execute("SELECT count(*) FROM observation WHERE patient_id = %s", (patient,)).fetchone() == (7,)
        # A re-delivered reading that falls into a compressed chunk is still a harmless duplicate.
        conn.execute(
            "INSERT INTO observation (reading_id, component, measured_at, patient_id, gateway_id,"
            " device_address, kind, value, unit, received_at)"
            " VALUES (%s, 'weight', %s, %s, 'gw-ts', 'AA', 'weight', 80, 'kg', now())"
            " ON CONFLICT DO NOTHING",
            (before[0], before[1], patient),
        )
        assert conn.execute("SELECT count(*) FROM observation WHERE patient_id = %s", (patient,)).fetchone() == (7,)


@pytest.mark.timescaledb
def test_timescaledb_policies_compress_old_chunks_and_materialise_recent_days(timescaledb_url: str) -> None:
    """The policies as the job scheduler runs them (``run_job``, not the functions below them)."""
    with psycopg.connect(timescaledb_url, autocommit=True) as conn:
        patient = _patient_with_weights(conn, days=0)
        for age, kg in (("60 days", 79.0), ("2 days", 80.0)):
            conn.execute(
                "INSERT INTO observation (reading_id, component, measured_at, patient_id, gateway_id,"
                " device_address, kind, value, unit, received_at)"
                " VALUES (gen_random_uuid(), 'weight', now() - %s::interval, %s, 'gw-ts', 'AA', 'weight', %s, 'kg',"
                " now())",
                (age, patient, kg),
            )
            conn.execute(
                "INSERT INTO reading_raw (reading_id, measured_at, gateway_id, device, raw)"
                " VALUES (gen_random_uuid(), now() - %s::interval, 'gw-ts', '{}', '\\x00')",
                (age,),
            )
        jobs = conn.execute(
            "SELECT job_id FROM timescaledb_information.jobs"
            " WHERE proc_name IN ('policy_compression', 'policy_refresh_continuous_aggregate')"
        ).fetchall()
        assert len(jobs) == 3
        for (job,) in jobs:
            conn.execute("CALL run_job(%s)", (job,))
        chunks = conn.execute(
            "SELECT DISTINCT hypertable_name, range_end < now() - interval '30 days', is_compressed"
            " FROM timescaledb_information.chunks WHERE hypertable_name IN ('observation', 'reading_raw')"
            " ORDER BY 1, 2"
        ).fetchall()
        # Older than EGENMON_COMPRESS_AFTER (30 days): compressed; the recent chunk: not yet.
        assert chunks == [
            ("observation", False, False),
            ("observation", True, True),
            ("reading_raw", False, False),
            ("reading_raw", True, True),
        ]
        # The refresh policy materialised the recent day (its window is the last 40 days).
        conn.execute("ALTER MATERIALIZED VIEW observation_daily SET (timescaledb.materialized_only = true)")
        try:
            materialised = conn.execute(
                "SELECT n, mean FROM observation_daily WHERE patient_id = %s AND component = 'weight'", (patient,)
            ).fetchall()
        finally:
            conn.execute("ALTER MATERIALIZED VIEW observation_daily SET (timescaledb.materialized_only = false)")
        assert materialised == [(1, 80.0)]

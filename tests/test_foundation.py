"""The local stack and the schema: real PostgreSQL, real Mosquitto, real migrations."""

from __future__ import annotations

import psycopg
import pytest

from ingest.schema import migrate, storage_mode


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
